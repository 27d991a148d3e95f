import { gql } from "../api";
import { fill, h } from "../dom";
import { clock, shortId } from "../format";
import type { Capabilities } from "../session";
import { errorBox, notice } from "../ui";

interface LogLine {
  at: string;
  microVmId: string;
  stream: string;
  line: string;
}

/**
 * The workload's stdout and stderr (podLogs): the last lines, then, in follow mode, whatever comes after them (asked
 * for again every second from the newest line's instant; lines seen already are not shown twice).
 */
export function logsPanel(podId: string, caps: Capabilities, replicas: number, signal: AbortSignal): HTMLElement {
  if (!caps.has("Query", "podLogs"))
    return h("section", { class: "panel" }, h("h2", null, "Logs"),
      notice("This Kraud's API has no podLogs query: the workload's log cannot be shown here.", "warn"));

  const replica = h("select", { "aria-label": "Replica" }, h("option", { value: "" }, "all replicas"),
    Array.from({ length: replicas }, (_, i) => h("option", { value: String(i) }, `replica ${i}`)));
  const tail = h("input", { type: "number", min: 1, max: 5000, value: 200, "aria-label": "Lines" });
  const follow = h("input", { type: "checkbox", "data-testid": "follow" });
  const status = h("span", { class: "status" });
  const out = h("pre", { class: "logs", "data-testid": "logs", "aria-live": "polite" });
  const seen = new Set<string>();
  let newest: string | null = null;
  let followTimer: number | undefined;

  const key = (l: LogLine) => `${l.at}|${l.microVmId}|${l.stream}|${l.line}`;
  const show = (lines: LogLine[]) => {
    const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    for (const l of lines) {
      if (seen.has(key(l))) continue;
      seen.add(key(l));
      if (!newest || l.at > newest) newest = l.at;
      out.appendChild(h("span", { class: `line ${l.stream === "stderr" ? "stderr" : "stdout"}` },
        h("span", { class: "at" }, clock(l.at)), " ", h("span", { class: "vm" }, shortId(l.microVmId)), " ", l.line, "\n"));
    }
    if (atBottom) out.scrollTop = out.scrollHeight;
  };
  const ask = (since: string | null, lines: number | null) => gql<{ podLogs: LogLine[] }>(
    `query($id: ID!, $r: Int, $t: Int, $s: DateTime) { podLogs(podId: $id, replica: $r, tail: $t, since: $s) { at microVmId stream line } }`,
    { id: podId, r: replica.value === "" ? null : Number(replica.value), t: lines, s: since });

  const load = async () => {
    window.clearTimeout(followTimer);
    seen.clear();
    newest = null;
    fill(out);
    fill(status, "loading…");
    try {
      const r = await ask(null, Number(tail.value) || 200);
      if (signal.aborted) return;
      show(r.podLogs);
      fill(status, r.podLogs.length === 0 ? "no lines yet" : `${r.podLogs.length} lines`);
      if (follow.checked) followTimer = window.setTimeout(next, 1000);
    } catch (e) {
      fill(status, errorBox(e));
    }
  };
  const next = async () => {
    if (signal.aborted || !follow.checked) return;
    try {
      const r = await ask(newest, null);
      if (signal.aborted) return;
      show(r.podLogs);
      fill(status, `following · ${seen.size} lines`);
    } catch (e) {
      fill(status, errorBox(e));
    }
    if (!signal.aborted && follow.checked) followTimer = window.setTimeout(next, 1000);
  };
  signal.addEventListener("abort", () => window.clearTimeout(followTimer));
  follow.addEventListener("change", () => {
    window.clearTimeout(followTimer);
    if (follow.checked) void next();
    else fill(status, `${seen.size} lines`);
  });
  replica.addEventListener("change", () => void load());
  tail.addEventListener("change", () => void load());
  void load();
  return h("section", { class: "panel" }, h("h2", null, "Logs"),
    h("div", { class: "row" }, replica, h("label", null, "last ", tail, " lines"), h("label", null, follow, " follow"), status), out);
}
