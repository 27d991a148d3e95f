import { gql } from "../api";
import { fill, h } from "../dom";
import { badge, time } from "../format";
import type { Page } from "../page";
import type { Host } from "../types";
import { busy, errorBox, poll } from "../ui";

interface Zone {
  id: string;
  datacenter: string;
  racks: string[];
  hosts: Host[];
}

function meter(used: number, total: number, unit: string): HTMLElement {
  const m = h("meter", { min: 0, max: total, value: used, title: `${used} of ${total} ${unit}` });
  return h("span", { class: "meter" }, m, ` ${used}/${total} ${unit}`);
}

/** The operator's fleet: zones, racks and hosts with their capacity and microVMs; cordon, uncordon and drain. */
export const hostsPage: Page = async (root, { signal }) => {
  const body = h("div", { "data-testid": "hosts" });
  const outcome = h("div", { class: "outcome" });
  fill(root, h("div", { class: "page-head" }, h("h1", null, "Hosts")), outcome, body);
  let refresh: () => Promise<void> = async () => {};
  const action = (x: Host, mutation: string, label: string) => {
    const b = h("button", { type: "button", class: "small" }, label);
    b.addEventListener("click", () => void busy(b, async () => {
      fill(outcome);
      try {
        await gql(`mutation($id: ID!) { ${mutation}(id: $id) { state } }`, { id: x.id });
        await refresh();
      } catch (e) {
        fill(outcome, errorBox(e));
      }
    }));
    return b;
  };
  refresh = poll(signal, 3000, async () => {
    try {
      const r = await gql<{ zones: Zone[] }>(`{ zones { id datacenter racks hosts { id name zone rack role state sevSnp cpu memoryMiB cpuUsed memoryUsedMiB lastHeartbeat
        microVms { id podId state } } } }`);
      const card = (x: Host) => h("div", { class: `host host-${x.state.toLowerCase()}`, "data-host": x.name, "data-state": x.state },
        h("div", { class: "host-head" }, h("span", { class: "host-name" }, x.name), badge(x.state), h("span", { class: "tag" }, x.role),
          x.sevSnp ? h("span", { class: "tag" }, "SEV-SNP") : null),
        x.role === "COMPUTE" ? h("div", null, meter(x.cpuUsed, x.cpu, "vCPU"), meter(x.memoryUsedMiB, x.memoryMiB, "MiB")) : null,
        h("div", { class: "hint" }, `${x.microVms.length} microVMs · heartbeat ${time(x.lastHeartbeat)}`),
        h("div", { class: "row" },
          x.state === "READY" ? [action(x, "cordonHost", "Cordon"), action(x, "drainHost", "Drain")] : null,
          x.state === "CORDONED" || x.state === "DRAINING" ? action(x, "uncordonHost", "Uncordon") : null));
      fill(body, r.zones.map((z) => h("section", { class: "panel zone", "data-zone": z.id },
        h("h2", null, `${z.datacenter} · zone ${z.id}`),
        h("div", { class: "racks" }, z.racks.map((rack) =>
          h("div", { class: "rack" }, h("h4", null, `rack ${rack}`), z.hosts.filter((x) => x.rack === rack).map(card)))))));
    } catch (e) {
      fill(body, errorBox(e));
    }
  });
};
