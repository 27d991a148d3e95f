import { ApiError, gql } from "../api";
import { fill, h, row, table } from "../dom";
import { badge, ms, shortId, time } from "../format";
import type { Page } from "../page";
import { hostLabel, hostNames, podFields } from "../queries";
import { session } from "../session";
import type { Pod } from "../types";
import { busy, errorBox, notice, poll } from "../ui";
import { logsPanel } from "./podLogs";
import { timelinePanel } from "./podTimeline";

/**
 * One pod: its state and microVMs (refreshed every two seconds), actions, timeline and logs. Scale and delete carry the
 * version the user acted on, so a change made meanwhile by someone else is refused (CONFLICT) instead of overwritten.
 */
export const podPage: Page = async (root, ctx) => {
  const { caps, signal } = ctx;
  const id = ctx.params[0];
  const hosts = await hostNames();
  const head = h("div", { class: "page-head" });
  const details = h("dl", { class: "details" });
  const instances = h("div", { "data-testid": "instances" });
  const outcome = h("div", { class: "outcome", "data-testid": "action-outcome" });
  const versionNote = h("span", { class: "hint", "data-testid": "base-version" });
  const replicas = h("input", { type: "number", min: 1, max: 64, step: 1, "aria-label": "Replicas", "data-testid": "scale-replicas" });
  const scale = h("button", { type: "button", "data-testid": "scale" }, "Scale");
  const restart = h("button", { type: "button", "data-testid": "restart" }, "Restart");
  const del = h("button", { type: "button", class: "danger", "data-testid": "delete" }, "Delete");
  const confirmBox = h("span", { class: "confirm" });

  let pod: Pod | null = null;
  // The version the user is acting on: fixed from the moment they start changing something until the action is done.
  let base: number | null = null;
  const hold = () => {
    if (pod && base === null) base = pod.version;
    fill(versionNote, base === null ? "" : `Acting on version ${base}`);
  };
  const release = () => {
    base = null;
    fill(versionNote);
  };
  replicas.addEventListener("focus", hold);
  replicas.addEventListener("input", hold);

  const tabs = h("div", { class: "tabs", role: "tablist" });
  const tabBody = h("div", { class: "tab-body" });
  fill(root, head, details,
    h("section", { class: "panel actions" }, h("h2", null, "Actions"),
      h("div", { class: "row" }, replicas, scale, restart, del, confirmBox, versionNote), outcome),
    tabs, tabBody);

  const render = () => {
    if (!pod) return;
    const p = pod;
    fill(head, h("h1", null, h("span", { "data-testid": "pod-name" }, p.name)), badge(p.state, p.reason),
      p.reason ? h("span", { class: "reason" }, p.reason) : null);
    const items: [string, Node | string][] = [
      ["Namespace", p.namespace],
      ["Image", h("code", null, p.image)],
      ...(caps.has("Pod", "imageDigest") ? [["Image digest", h("code", { "data-testid": "image-digest" }, p.imageDigest ?? "not resolved")] as [string, Node]] : []),
      ["Replicas", `${p.instances.filter((i) => i.state === "RUNNING").length} running of ${p.replicas}`],
      ["CPU / memory", `${p.cpu} vCPU · ${p.memoryMiB} MiB`],
      ["Version", String(p.version)],
      ["Created", time(p.createdAt)],
      ...(session.isOperator() ? [["Tenant", p.tenantId] as [string, string]] : []),
      ...(p.confidential ? [["Attestation", p.attestation ? `${p.attestation.verified ? "verified" : "not verified"} · ${p.attestation.measurement.slice(0, 16)}…` : "—"] as [string, string]] : []),
    ];
    fill(details, items.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
    if (document.activeElement !== replicas && base === null) replicas.value = String(p.replicas);
    fill(instances, p.instances.length === 0 ? h("p", { class: "empty" }, "No microVMs.") : table(
      ["microVM", "Host", "State", "Boot", "IPv4", "IPv6", "Started", ...(caps.has("MicroVm", "exitCode") ? ["Exit"] : [])],
      p.instances.map((i) => row({ "data-vm": i.id, "data-host": i.hostId, "data-state": i.state }, [
        h("code", null, shortId(i.id)), hostLabel(hosts, i.hostId), badge(i.state), ms(i.bootMs), i.ip4 ?? "—", i.ip6 ?? "—", time(i.startedAt),
        ...(caps.has("MicroVm", "exitCode") ? [i.exitCode ?? "—"] : []),
      ]))));
  };

  const polling = new AbortController();
  signal.addEventListener("abort", () => polling.abort());
  const refresh = poll(polling.signal, 2000, async () => {
    try {
      const r = await gql<{ pod: Pod | null }>(`query($id: ID!) { pod(id: $id) { ${podFields(caps)} } }`, { id });
      if (!r.pod) {
        fill(root, h("h1", null, "Pod not found"), h("p", null, "No pod with this id is visible to this token."));
        polling.abort();
        return;
      }
      pod = r.pod;
      render();
    } catch (e) {
      fill(outcome, errorBox(e));
    }
  });

  const act = async (button: HTMLButtonElement, what: string, run: (version: number) => Promise<Pod>) => {
    if (!pod) return;
    const version = base ?? pod.version;
    fill(outcome);
    try {
      pod = await busy(button, () => run(version));
      fill(outcome, notice(`${what}: version ${pod.version}, ${pod.state}.`, "ok"));
      render();
    } catch (e) {
      const conflict = e instanceof ApiError && e.code === "CONFLICT";
      fill(outcome, errorBox(e), conflict ? notice(`You acted on version ${version}; the pod was changed meanwhile. It is shown as it is now: look, then try again.`, "warn") : null);
    } finally {
      release();
      await refresh();
    }
  };

  scale.addEventListener("click", () => void act(scale, `Scaled to ${replicas.value}`, async (version) =>
    (await gql<{ scalePod: Pod }>(`mutation($id: ID!, $n: Int!, $v: Int) { scalePod(id: $id, replicas: $n, expectedVersion: $v) { ${podFields(caps)} } }`,
      { id, n: Number(replicas.value), v: version })).scalePod));
  restart.addEventListener("click", () => void act(restart, "Restarted", async () =>
    (await gql<{ restartPod: Pod }>(`mutation($id: ID!) { restartPod(id: $id) { ${podFields(caps)} } }`, { id })).restartPod));
  del.addEventListener("click", () => {
    hold();
    const yes = h("button", { type: "button", class: "danger", "data-testid": "confirm-delete" }, `Yes, delete ${pod?.name ?? ""}`);
    const no = h("button", { type: "button", class: "link" }, "Cancel");
    no.addEventListener("click", () => {
      fill(confirmBox);
      release();
    });
    yes.addEventListener("click", () => {
      fill(confirmBox);
      void act(yes, "Deletion requested", async (version) =>
        (await gql<{ deletePod: Pod }>(`mutation($id: ID!, $v: Int) { deletePod(id: $id, expectedVersion: $v) { ${podFields(caps)} } }`,
          { id, v: version })).deletePod);
    });
    fill(confirmBox, yes, no);
  });

  const panels: Record<string, (tab: AbortSignal) => HTMLElement> = {
    instances: () => instances,
    timeline: (tab) => timelinePanel(id, tab),
    logs: (tab) => logsPanel(id, caps, pod?.replicas ?? 1, tab),
  };
  let tab: AbortController | null = null;
  const open = (name: string) => {
    tab?.abort();
    tab = new AbortController();
    for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    fill(tabBody, panels[name](AbortSignal.any([signal, tab.signal])));
  };
  fill(tabs, ["instances", "timeline", "logs"].map((name) =>
    h("button", { type: "button", role: "tab", "data-tab": name, onclick: () => open(name) }, name[0].toUpperCase() + name.slice(1))));
  open("instances");
};
