import { gql } from "../api";
import { fill, h, row, table } from "../dom";
import { shortId, time } from "../format";
import type { EventRecord } from "../types";
import { errorBox } from "../ui";

/** The pod's events and every event that shares their correlation (scheduler verdicts, host reports), oldest first. */
export function timelinePanel(podId: string, signal: AbortSignal): HTMLElement {
  const body = h("div", { "data-testid": "timeline" }, h("p", { class: "status" }, "Loading events…"));
  const refresh = h("button", { type: "button", class: "link" }, "Refresh");
  const load = async () => {
    try {
      const r = await gql<{ timeline: EventRecord[] }>(
        `query($id: ID!) { timeline(resourceId: $id) { seq at streamId version type actor correlationId data } }`, { id: podId });
      if (signal.aborted) return;
      fill(body, r.timeline.length === 0 ? h("p", { class: "empty" }, "No events.") : table(["Time", "Event", "Stream", "Version", "Actor", "Data"],
        r.timeline.map((e) => row({ "data-event": e.type, "data-seq": e.seq }, [
          time(e.at),
          h("code", null, e.type),
          e.streamId === podId ? "this pod" : h("code", { title: e.streamId }, shortId(e.streamId)),
          String(e.version),
          e.actor ?? "—",
          h("details", null, h("summary", null, "data"), h("pre", null, JSON.stringify(e.data, null, 2))),
        ]))));
    } catch (e) {
      fill(body, errorBox(e));
    }
  };
  refresh.addEventListener("click", () => void load());
  void load();
  return h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Timeline"), refresh), body);
}
