import { gql } from "../api";
import { field, fill, h, row, table } from "../dom";
import { badge } from "../format";
import type { Page } from "../page";
import { hostLabel, hostNames } from "../queries";
import type { Ingress } from "../types";
import { busy, errorBox, notice, poll } from "../ui";

const ingressFields = `id name tenantId kind state readiness replicas { hostId zone } routes { host path podId port }
  domains { name verified verificationToken } publicAddress warnings`;

/** Ingresses with their replicas, routes and custom domains (the TXT record to publish, and its verification). */
export const ingressesPage: Page = async (root, { signal }) => {
  const hosts = await hostNames();
  const list = h("div", { "data-testid": "ingresses" });
  const outcome = h("div", { class: "outcome" });
  const pods = (await gql<{ pods: { nodes: { id: string; name: string; namespace: string }[] } }>(
    "{ pods(first: 100) { nodes { id name namespace } } }")).pods.nodes;
  const name = h("input", { required: true, placeholder: "web", autocomplete: "off" });
  const host = h("input", { required: true, placeholder: "web.acme.ingress.kraud.cloud" });
  const path = h("input", { value: "/" });
  const pod = h("select", null, pods.map((p) => h("option", { value: p.id }, `${p.namespace}/${p.name}`)));
  const port = h("input", { type: "number", min: 1, max: 65535, value: 80 });
  const submit = h("button", { type: "submit", class: "primary" }, "Create managed ingress");
  let refresh: () => Promise<void> = async () => {};
  const run = async (button: HTMLButtonElement, what: () => Promise<unknown>, done?: string) => {
    fill(outcome);
    try {
      await busy(button, what);
      if (done) fill(outcome, notice(done, "ok"));
      await refresh();
    } catch (err) {
      fill(outcome, errorBox(err));
    }
  };
  const form = h("form", { class: "form inline", onsubmit: (e: Event) => {
    e.preventDefault();
    void run(submit, () => gql("mutation($in: CreateIngressInput!) { createIngress(input: $in) { id } }", { in: {
      name: name.value.trim(), kind: "MANAGED", routes: [{ host: host.value.trim(), path: path.value.trim() || "/", podId: pod.value, port: Number(port.value) }],
    } }));
  } }, field("Name", name), field("Host", host), field("Path", path), field("Pod", pod), field("Port", port), submit);

  fill(root, h("div", { class: "page-head" }, h("h1", null, "Ingresses")),
    pods.length ? form : h("p", { class: "hint" }, "Create a pod first: a managed ingress routes to pods."), outcome, list);

  const card = (i: Ingress) => {
    const domain = h("input", { placeholder: "www.example.com", "aria-label": "Domain" });
    const add = h("button", { type: "button" }, "Add domain");
    add.addEventListener("click", () => void run(add, () =>
      gql("mutation($id: ID!, $n: String!) { addDomain(ingressId: $id, name: $n) { name } }", { id: i.id, n: domain.value.trim() })));
    const del = h("button", { type: "button", class: "danger small" }, "Delete ingress");
    del.addEventListener("click", () => void run(del, () => gql("mutation($id: ID!) { deleteIngress(id: $id) { id } }", { id: i.id }),
      `Ingress ${i.name} deleted.`));
    return h("section", { class: "panel", "data-ingress-name": i.name },
      h("div", { class: "panel-head" }, h("h2", null, i.name), badge(i.state), h("span", { class: "tag" }, i.kind), h("span", { class: "tag" }, i.readiness), del),
      i.publicAddress ? h("p", null, "Public address ", h("code", null, i.publicAddress)) : null,
      i.warnings.map((w) => notice(w, "warn")),
      h("h3", null, "Replicas"),
      table(["Host", "Zone"], i.replicas.map((r) => [hostLabel(hosts, r.hostId), r.zone])),
      h("h3", null, "Routes"),
      i.routes.length ? table(["Host", "Path", "Pod", "Port"], i.routes.map((r) => [r.host, r.path, h("a", { href: `#/pods/${r.podId}` }, r.podId.slice(0, 8)), String(r.port)]))
        : h("p", { class: "empty" }, "No routes."),
      h("h3", null, "Domains"),
      i.domains.length ? table(["Domain", "Verified", "TXT record to publish", ""], i.domains.map((d) => {
        const verify = h("button", { type: "button", class: "small" }, "Verify");
        verify.addEventListener("click", () => void run(verify, () =>
          gql("mutation($id: ID!, $n: String!) { verifyDomain(ingressId: $id, name: $n) { verified } }", { id: i.id, n: d.name })));
        return row({ "data-domain": d.name }, [d.name, d.verified ? "yes" : "no",
          h("code", null, `_kraud-challenge.${d.name} TXT "${d.verificationToken}"`), d.verified ? "" : verify]);
      })) : h("p", { class: "empty" }, "No custom domains."),
      h("div", { class: "row" }, domain, add));
  };

  refresh = poll(signal, 3000, async () => {
    try {
      const r = await gql<{ ingresses: Ingress[] }>(`{ ingresses { ${ingressFields} } }`);
      // Keep what the user is typing: redraw only when nothing in the list has focus.
      if (list.contains(document.activeElement) && document.activeElement !== document.body) return;
      fill(list, r.ingresses.length === 0 ? h("p", { class: "empty" }, "No ingresses.") : r.ingresses.map(card));
    } catch (err) {
      fill(list, errorBox(err));
    }
  });
};
