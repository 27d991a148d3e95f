import { gql } from "../api";
import { field, fill, h } from "../dom";
import type { Page } from "../page";
import { busy, errorBox } from "../ui";

/** Lines of KEY=VALUE, the way people write environments. */
function parseEnv(text: string): Record<string, string> | null {
  const env: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`"${line}" is not KEY=VALUE`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return Object.keys(env).length ? env : null;
}

export const createPodPage: Page = (root) => {
  const input = (name: string, attrs: Record<string, string | number | boolean> = {}) =>
    h("input", { name, id: `pod-${name}`, "data-testid": `pod-${name}`, ...attrs });
  const name = input("name", { required: true, placeholder: "web", autocomplete: "off" });
  const namespace = input("namespace", { placeholder: "default" });
  const image = input("image", { required: true, placeholder: "nginx:1.27" });
  const cpu = input("cpu", { type: "number", min: 1, max: 64, value: 1, required: true });
  const memory = input("memoryMiB", { type: "number", min: 64, step: 64, value: 256, required: true });
  const replicas = input("replicas", { type: "number", min: 1, max: 64, value: 1, required: true });
  const ephemeral = input("ephemeralGiB", { type: "number", min: 0, value: 0 });
  const zone = input("zone", { placeholder: "any (the scheduler chooses)" });
  const confidential = input("confidential", { type: "checkbox" });
  const command = h("textarea", { name: "command", rows: 3, placeholder: "one argument per line (empty: the image's own)", "data-testid": "pod-command" });
  const env = h("textarea", { name: "env", rows: 3, placeholder: "KEY=value, one per line", "data-testid": "pod-env" });
  const status = h("div", { class: "status", "data-testid": "create-status" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "pod-submit" }, "Create pod");

  const form = h("form", { class: "form", onsubmit: (e: Event) => {
    e.preventDefault();
    fill(status);
    void busy(submit, async () => {
      try {
        const args = command.value.split("\n").map((s) => s.trim()).filter(Boolean);
        const spec = {
          name: name.value.trim(),
          namespace: namespace.value.trim() || null,
          image: image.value.trim(),
          cpu: Number(cpu.value),
          memoryMiB: Number(memory.value),
          replicas: Number(replicas.value),
          ephemeralGiB: Number(ephemeral.value) || null,
          zone: zone.value.trim() || null,
          confidential: confidential.checked || null,
          command: args.length ? args : null,
          env: parseEnv(env.value),
        };
        const r = await gql<{ createPod: { id: string } }>("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", { in: spec });
        location.hash = `#/pods/${r.createPod.id}`;
      } catch (err) {
        fill(status, errorBox(err));
      }
    });
  } },
  h("div", { class: "cols" },
    field("Name", name, "lower-case letters, digits and '-'"),
    field("Namespace", namespace),
    field("Image", image),
    field("Zone", zone)),
  h("div", { class: "cols" },
    field("vCPUs", cpu), field("Memory (MiB)", memory), field("Replicas", replicas), field("Ephemeral NVMe (GiB)", ephemeral)),
  h("div", { class: "cols" }, field("Command", command), field("Environment", env)),
  h("label", { class: "check" }, confidential, " Confidential Compute (AMD SEV-SNP, one replica, attested before it runs)"),
  h("div", { class: "row" }, submit, h("a", { href: "#/pods", class: "button link" }, "Cancel")),
  status);
  fill(root, h("div", { class: "page-head" }, h("h1", null, "Create pod")), form);
  name.focus();
};
