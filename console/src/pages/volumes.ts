import { gql } from "../api";
import { field, fill, h, row, table } from "../dom";
import { badge, shortId } from "../format";
import type { Page } from "../page";
import { hostLabel, hostNames } from "../queries";
import type { Volume } from "../types";
import { busy, errorBox, notice, poll } from "../ui";

const volumeFields = "id name tenantId class sizeGiB zone state replicas { hostId state } desiredReplicas encrypted attachedTo version";

/** Volumes with their replicas' hosts and encryption; create and crypto-erase. */
export const volumesPage: Page = async (root, { signal }) => {
  const hosts = await hostNames();
  const list = h("div", { "data-testid": "volumes" });
  const outcome = h("div", { class: "outcome" });
  const name = h("input", { name: "name", required: true, placeholder: "pgdata", autocomplete: "off" });
  const klass = h("select", { name: "class" }, ["BLOCK", "GFS", "RED"].map((c) => h("option", { value: c }, c)));
  const size = h("input", { name: "sizeGiB", type: "number", min: 1, value: 10, required: true });
  const zone = h("input", { name: "zone", placeholder: "any" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create volume");
  let refresh: () => Promise<void> = async () => {};
  const form = h("form", { class: "form inline", onsubmit: (e: Event) => {
    e.preventDefault();
    fill(outcome);
    void busy(submit, async () => {
      try {
        await gql("mutation($in: CreateVolumeInput!) { createVolume(input: $in) { id } }",
          { in: { name: name.value.trim(), class: klass.value, sizeGiB: Number(size.value), zone: zone.value.trim() || null } });
        form.reset();
        await refresh();
      } catch (err) {
        fill(outcome, errorBox(err));
      }
    });
  } }, field("Name", name), field("Class", klass), field("Size (GiB)", size), field("Zone", zone), submit);

  fill(root, h("div", { class: "page-head" }, h("h1", null, "Volumes")),
    h("p", { class: "hint" }, "BLOCK: 3 replicas in one zone, one pod at a time. GFS: 3 replicas, shared. RED: 2 replicas, for data you can rebuild. Every replica is encrypted by its host runtime; deleting a volume destroys its keys."),
    form, outcome, list);

  const remove = async (button: HTMLButtonElement, v: Volume) => {
    fill(outcome);
    try {
      await busy(button, () => gql("mutation($id: ID!, $v: Int) { deleteVolume(id: $id, expectedVersion: $v) { id } }", { id: v.id, v: v.version }));
      fill(outcome, notice(`Volume ${v.name} is being crypto-erased.`, "ok"));
      await refresh();
    } catch (err) {
      fill(outcome, errorBox(err));
    }
  };

  refresh = poll(signal, 3000, async () => {
    try {
      const r = await gql<{ volumes: { nodes: Volume[] } }>(`{ volumes(first: 100) { nodes { ${volumeFields} } } }`);
      const vols = r.volumes.nodes.filter((v) => v.state !== "DELETED");
      fill(list, vols.length === 0 ? h("p", { class: "empty" }, "No volumes.") : table(
        ["Name", "Class", "Size", "Zone", "State", "Replicas", "Encrypted", "Attached to", ""],
        vols.map((v) => {
          const del = h("button", { type: "button", class: "danger small" }, "Delete");
          del.addEventListener("click", () => void remove(del, v));
          return row({ "data-volume-name": v.name }, [
            v.name, v.class, `${v.sizeGiB} GiB`, v.zone ?? "—", badge(v.state),
            h("ul", { class: "plain" }, v.replicas.map((r) => h("li", null, hostLabel(hosts, r.hostId), " ", badge(r.state)))),
            v.encrypted ? "yes" : "no",
            v.attachedTo.length ? v.attachedTo.map((p) => h("a", { href: `#/pods/${p}` }, shortId(p), " ")) : "—",
            del,
          ]);
        })));
    } catch (err) {
      fill(list, errorBox(err));
    }
  });
};
