import { gql } from "../api";
import { field, fill, h, svg } from "../dom";
import { eventsBetween, type WindowEvent } from "../events";
import { badge, clock, fromLocalInput, shortId, time, toLocalInput } from "../format";
import type { Page } from "../page";
import { microVmFields, tenantNames } from "../queries";
import { session } from "../session";
import type { Host, MicroVm, PlatformSnapshot, Pod } from "../types";
import { errorBox, notice } from "../ui";

const STEPS = 1000;

/** Where each pod's microVMs were in the snapshot drawn before: moves are drawn as such. */
type Placement = Map<string, Set<string>>;

function placements(pods: Pod[]): Placement {
  return new Map(pods.map((p) => [p.id, new Set(p.instances.map((i) => i.hostId))]));
}

/**
 * Incident replay: a time slider over a window; each position redraws the platform as platformAt folds it from the event
 * log (hosts by zone and rack with their state, the microVMs on them coloured by state). Moving across a host failure
 * shows the replicas that moved, and where from. Clicking the event strip lists the events around that instant.
 */
export const replayPage: Page = async (root, { caps, query }) => {
  const operator = session.me().tenant === null;
  const tenants = await tenantNames();
  const now = new Date();
  const fromInput = h("input", { type: "datetime-local", step: 1, "data-testid": "replay-from" });
  const toInput = h("input", { type: "datetime-local", step: 1, "data-testid": "replay-to" });
  const tenant = h("select", { "aria-label": "Tenant", "data-testid": "replay-tenant" }, h("option", { value: "" }, "every tenant"),
    [...tenants].map(([id, name]) => h("option", { value: id }, name)));
  if (query.get("tenant")) tenant.value = query.get("tenant")!;
  const slider = h("input", { type: "range", min: 0, max: STEPS, step: 1, value: STEPS, "aria-label": "Instant", "data-testid": "replay-slider", class: "slider" });
  const instant = h("output", { "data-testid": "replay-instant", class: "instant" });
  const strip = svg("svg", { class: "strip", viewBox: `0 0 ${STEPS} 40`, preserveAspectRatio: "none", role: "img", "aria-label": "Events in the window; click to list those around an instant", "data-testid": "replay-strip" });
  const map = h("div", { class: "map", "data-testid": "replay-map" });
  const changes = h("div", { "data-testid": "replay-changes" });
  const around = h("div", { "data-testid": "replay-events" });
  const status = h("span", { class: "status" });

  const window_ = { from: new Date(now.getTime() - 10 * 60_000), to: now };
  const parse = (v: string | null) => (v && !Number.isNaN(Date.parse(v)) ? new Date(v) : null);
  window_.from = parse(query.get("from")) ?? window_.from;
  window_.to = parse(query.get("to")) ?? window_.to;
  const at0 = parse(query.get("at"));

  const instantOf = (pos: number) => new Date(window_.from.getTime() + ((window_.to.getTime() - window_.from.getTime()) * pos) / STEPS);
  const positionOf = (d: Date) => Math.round(((d.getTime() - window_.from.getTime()) / Math.max(1, window_.to.getTime() - window_.from.getTime())) * STEPS);

  let previous: Placement | null = null;
  let previousHosts = new Map<string, string>();
  let request = 0;
  let timer: number | undefined;
  let events: WindowEvent[] = [];

  const share = (at: Date) => {
    const q = new URLSearchParams({ from: window_.from.toISOString(), to: window_.to.toISOString(), at: at.toISOString() });
    if (tenant.value) q.set("tenant", tenant.value);
    history.replaceState(null, "", `#/replay?${q}`);
  };

  const draw = (snap: PlatformSnapshot) => {
    const pods = snap.pods.filter((p) => !tenant.value || p.tenantId === tenant.value);
    const podById = new Map(pods.map((p) => [p.id, p]));
    const hostName = new Map(snap.hosts.map((x) => [x.id, x.name]));
    const nameOf = (id: string) => hostName.get(id) ?? previousHosts.get(id) ?? `host ${shortId(id)}`;
    const before = previous;
    const moved = new Map<string, string>(); // pod id + host id → where from
    const notes: string[] = [];
    if (before) {
      for (const p of pods) {
        const was = before.get(p.id);
        if (!was) continue;
        const gone = [...was].filter((x) => !p.instances.some((i) => i.hostId === x));
        for (const i of p.instances)
          if (!was.has(i.hostId) && gone.length) {
            moved.set(`${p.id}|${i.hostId}`, nameOf(gone[0]));
            notes.push(`${p.namespace}/${p.name}: a replica moved from ${nameOf(gone[0])} to ${nameOf(i.hostId)}`);
          }
      }
      for (const id of before.keys()) if (!podById.has(id)) notes.push(`pod ${shortId(id)} is not there at this instant`);
      for (const p of pods) if (!before.has(p.id)) notes.push(`${p.namespace}/${p.name} appears (${p.state})`);
    }
    for (const x of snap.hosts) if (x.state === "FAILED") notes.push(`host ${x.name} is FAILED`);

    const chip = (p: Pod, vm: MicroVm) => {
      const from = moved.get(`${p.id}|${vm.hostId}`);
      return h("span", { class: `vm state-${vm.state.toLowerCase()}${from ? " moved" : ""}`, "data-pod-name": p.name, "data-pod-id": p.id,
        "data-state": vm.state, "data-moved-from": from ?? null, title: `${p.namespace}/${p.name} · ${vm.state}${from ? ` · moved from ${from}` : ""}` },
      p.name, from ? h("span", { class: "from" }, ` ← ${from}`) : null);
    };
    const vmsOn = (hostId: string) => pods.flatMap((p) => p.instances.filter((i) => i.hostId === hostId).map((i) => chip(p, i)));
    const hostCard = (x: Host) => h("div", { class: `host host-${x.state.toLowerCase()} role-${x.role.toLowerCase()}`, "data-host": x.name, "data-host-id": x.id, "data-state": x.state },
      h("div", { class: "host-head" }, h("span", { class: "host-name" }, x.name), badge(x.state)),
      h("div", { class: "vms" }, vmsOn(x.id)));

    if (snap.hosts.length) {
      const zones = [...new Set(snap.hosts.map((x) => x.zone))].sort();
      fill(map, zones.map((z) => h("div", { class: "zone", "data-zone": z }, h("h3", null, `zone ${z}`),
        h("div", { class: "racks" }, [...new Set(snap.hosts.filter((x) => x.zone === z).map((x) => x.rack))].sort().map((r) =>
          h("div", { class: "rack", "data-rack": r }, h("h4", null, `rack ${r}`),
            snap.hosts.filter((x) => x.zone === z && x.rack === r).map(hostCard)))))));
    } else {
      // A tenant's token sees no inventory: its microVMs grouped by the (opaque) host they ran on.
      const hostIds = [...new Set(pods.flatMap((p) => p.instances.map((i) => i.hostId)))].sort();
      fill(map, hostIds.length === 0 ? h("p", { class: "empty" }, "No microVMs at this instant.") : h("div", { class: "racks" }, hostIds.map((id) =>
        h("div", { class: "host", "data-host-id": id }, h("div", { class: "host-head" }, h("span", { class: "host-name" }, `host ${shortId(id)}`)),
          h("div", { class: "vms" }, vmsOn(id))))));
    }
    const pending = pods.filter((p) => p.instances.length === 0);
    if (pending.length) map.appendChild(h("div", { class: "unplaced" }, h("h3", null, "Not placed"),
      pending.map((p) => h("span", { class: `vm state-${p.state.toLowerCase()}`, "data-pod-name": p.name, "data-pod-id": p.id, "data-state": p.state }, p.name))));
    fill(changes, notes.length ? h("ul", { class: "changes" }, notes.map((n) => h("li", null, n))) : null);
    previous = placements(pods);
    for (const x of snap.hosts) previousHosts.set(x.id, x.name);
  };

  const show = async (pos: number) => {
    const at = instantOf(pos);
    fill(instant, time(at.toISOString()));
    share(at);
    const mine = ++request;
    fill(status, "replaying…");
    try {
      const r = await gql<{ platformAt: PlatformSnapshot }>(`query($at: DateTime!) { platformAt(asOf: $at) { asOf
        hosts { id name zone rack role state sevSnp cpu memoryMiB cpuUsed memoryUsedMiB microVms { ${microVmFields(caps)} } }
        pods { id name namespace tenantId state replicas version createdAt reason image cpu memoryMiB confidential instances { ${microVmFields(caps)} } } } }`,
      { at: at.toISOString() });
      if (mine !== request) return; // a later position was asked for meanwhile
      draw(r.platformAt);
      map.dataset.asOf = r.platformAt.asOf;
      const n = (count: number, what: string) => `${count} ${what}${count === 1 ? "" : "s"}`;
      fill(status, `${n(r.platformAt.pods.length, "pod")}, ${n(r.platformAt.hosts.length, "host")} at ${clock(at)}`);
    } catch (e) {
      if (mine === request) fill(map, errorBox(e));
    }
  };
  const schedule = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void show(Number(slider.value)), 120);
  };
  slider.addEventListener("input", schedule);

  const listAround = (at: Date) => {
    const span = Math.max(5_000, (window_.to.getTime() - window_.from.getTime()) / 40);
    const near = events.filter((e) => Math.abs(Date.parse(e.at) - at.getTime()) <= span);
    fill(around, h("h3", null, `Events within ${Math.round(span / 1000)} s of ${clock(at)}`),
      near.length === 0 ? h("p", { class: "empty" }, "None.") : h("ol", { class: "events" }, near.map((e) =>
        h("li", { "data-event": e.what }, h("span", { class: "at" }, clock(e.at)), " ", h("code", null, e.what),
          e.resourceId ? h("span", { class: "res" }, ` ${shortId(e.resourceId)}`) : null,
          e.actor ? h("span", { class: "actor" }, ` by ${e.actor}`) : null,
          operator && e.tenantId ? h("span", { class: "tenant" }, ` · ${tenants.get(e.tenantId) ?? shortId(e.tenantId)}`) : null))));
  };
  strip.addEventListener("click", (e: Event) => {
    const m = e as MouseEvent;
    const box = strip.getBoundingClientRect();
    const pos = Math.max(0, Math.min(STEPS, Math.round(((m.clientX - box.left) / box.width) * STEPS)));
    slider.value = String(pos);
    void show(pos);
    listAround(instantOf(pos));
  });

  const loadWindow = async () => {
    previous = null;
    fromInput.value = toLocalInput(window_.from);
    toInput.value = toLocalInput(window_.to);
    try {
      const snapPods = await gql<{ pods: { nodes: { id: string }[] } }>("{ pods(first: 100) { nodes { id } } }").catch(() => ({ pods: { nodes: [] } }));
      // An operator looking at one tenant still wants the platform's own events (host failures) beside the tenant's.
      events = (await eventsBetween(window_.from, window_.to, snapPods.pods.nodes.map((p) => p.id), null))
        .filter((e) => !tenant.value || e.tenantId === null || e.tenantId === tenant.value);
    } catch (e) {
      events = [];
      fill(around, errorBox(e));
    }
    fill(strip, svg("rect", { x: 0, y: 0, width: STEPS, height: 40, class: "strip-bg" }),
      events.map((e) => {
        const x = positionOf(new Date(e.at));
        const bad = /fail|lost|vanish|unschedulable/i.test(e.what);
        return svg("line", { x1: x, x2: x, y1: bad ? 2 : 12, y2: 38, class: bad ? "tick bad" : "tick" }, svg("title", null, `${clock(e.at)} ${e.what}`));
      }));
    const pos = at0 ? Math.max(0, Math.min(STEPS, positionOf(at0))) : STEPS;
    slider.value = String(pos);
    await show(pos);
  };

  const apply = h("button", { type: "submit", class: "primary" }, "Replay this window");
  const presets = [5, 30, 120].map((minutes) => {
    const b = h("button", { type: "button", class: "small" }, minutes < 60 ? `last ${minutes} min` : `last ${minutes / 60} h`);
    b.addEventListener("click", () => {
      window_.to = new Date();
      window_.from = new Date(window_.to.getTime() - minutes * 60_000);
      void loadWindow();
    });
    return b;
  });
  const form = h("form", { class: "form inline", onsubmit: (e: Event) => {
    e.preventDefault();
    const f = fromLocalInput(fromInput.value);
    const t = fromLocalInput(toInput.value);
    if (!f || !t || t <= f) {
      fill(around, notice("The window needs a start before its end.", "warn"));
      return;
    }
    window_.from = f;
    window_.to = t;
    void loadWindow();
  } }, field("From", fromInput), field("To", toInput), operator ? field("Tenant", tenant) : null, apply, presets);
  tenant.addEventListener("change", () => void loadWindow());

  fill(root, h("div", { class: "page-head" }, h("h1", null, "Incident replay"), status),
    h("p", { class: "hint" }, "The platform as the event log says it was at any instant. Drag the slider (or use the arrow keys), click the strip to list the events around an instant."),
    form,
    h("div", { class: "scrub" }, slider, strip, instant),
    h("div", { class: "legend" }, ["RUNNING", "BOOTING", "SCHEDULED", "PENDING", "STOPPING", "STOPPED", "FAILED", "UNSCHEDULABLE"].map((s) => badge(s))),
    changes, map, around);
  await loadWindow();
};
