import { fill, h, row, table } from "../dom";
import { badge, shortId, time } from "../format";
import type { Page } from "../page";
import { allPods, hostLabel, hostNames, tenantNames } from "../queries";
import { session } from "../session";
import type { Pod } from "../types";
import { errorBox, poll } from "../ui";

/** The tenant's pods (an operator's: every tenant's), refreshed every two seconds. */
export const podsPage: Page = async (root, { caps, signal }) => {
  const operator = session.isOperator();
  const digest = caps.has("Pod", "imageDigest");
  const body = h("div", { "data-testid": "pods" });
  const status = h("div", { class: "status" });
  const filter = h("input", { type: "search", placeholder: "Filter by name, namespace, image or state", "aria-label": "Filter pods" });
  fill(root,
    h("div", { class: "page-head" }, h("h1", null, "Pods"),
      // Pods belong to tenants: the platform's operator creates none.
      session.me().tenant ? h("a", { class: "button primary", href: "#/pods/new", "data-testid": "create-pod" }, "Create pod") : null),
    h("div", { class: "toolbar" }, filter, status),
    body);

  const [hosts, tenants] = await Promise.all([hostNames(), tenantNames()]);
  let last: Pod[] = [];
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = last.filter((p) => !q || [p.name, p.namespace, p.image, p.state].some((x) => x.toLowerCase().includes(q)));
    if (last.length === 0) {
      fill(body, h("p", { class: "empty" }, "No pods yet. ", h("a", { href: "#/pods/new" }, "Create one"), "."));
      return;
    }
    const headers = ["Name", "Namespace", ...(operator ? ["Tenant"] : []), "State", "Replicas", "Hosts", "Image", ...(digest ? ["Digest"] : []), "Created"];
    fill(body, table(headers, shown.map((p) => {
      const running = p.instances.filter((i) => i.state === "RUNNING").length;
      const hostList = [...new Set(p.instances.map((i) => i.hostId))].map((id) => hostLabel(hosts, id));
      return row({ "data-pod-id": p.id, "data-pod-name": p.name, "data-state": p.state }, [
        h("a", { href: `#/pods/${p.id}`, class: "pod-link" }, p.name),
        p.namespace,
        ...(operator ? [tenants.get(p.tenantId) ?? shortId(p.tenantId)] : []),
        badge(p.state, p.reason),
        h("span", { class: "replicas" }, `${running}/${p.replicas}`),
        h("span", { class: "hosts" }, hostList.join(", ") || "—"),
        h("code", { class: "image" }, p.image),
        ...(digest ? [h("code", { class: "digest", title: p.imageDigest ?? "" }, p.imageDigest ? p.imageDigest.slice(0, 19) + "…" : "—")] : []),
        time(p.createdAt),
      ]);
    }), { "data-testid": "pod-table" }));
  };
  filter.addEventListener("input", render);

  poll(signal, 2000, async () => {
    try {
      const { pods, total } = await allPods(caps);
      last = pods;
      fill(status, `${total} pod${total === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`);
      render();
    } catch (e) {
      fill(status, errorBox(e));
    }
  });
};
