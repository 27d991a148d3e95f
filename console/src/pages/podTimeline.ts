import { gqlAnswer } from "../api";
import { fill, h, row, table } from "../dom";
import { shortId, time } from "../format";
import type { ArchivedNote, EventRecord, TimelineArchive } from "../types";
import { errorBox } from "../ui";

/** The pod's events and every event that shares their correlation (scheduler verdicts, host reports), oldest first. */
export function timelinePanel(podId: string, signal: AbortSignal): HTMLElement {
  const body = h("div", { "data-testid": "timeline" }, h("p", { class: "status" }, "Loading events…"));
  const refresh = h("button", { type: "button", class: "link" }, "Refresh");
  const load = async () => {
    try {
      const { data: r, extensions } = await gqlAnswer<{ timeline: EventRecord[]; timelineArchives: TimelineArchive[] }>(
        `query($id: ID!) { timeline(resourceId: $id) { seq at streamId version type actor correlationId data }
          timelineArchives(resourceId: $id) { file fromSeq toSeq removedBefore } }`, { id: podId });
      if (signal.aborted) return;
      const archived = (extensions.archived as { timeline?: ArchivedNote } | undefined)?.timeline;
      fill(body, archiveNote(archived, r.timelineArchives), r.timeline.length === 0 ? h("p", { class: "empty" }, "No events.") : table(["Time", "Event", "Stream", "Version", "Actor", "Data"],
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

/**
 * Once archived events left the log, a pod older than the boundary has a timeline that starts there: said above the
 * events, with the archives that hold the rest (each proven offline by `kraud audit verify-archive FILE`).
 */
function archiveNote(note: ArchivedNote | undefined, archives: TimelineArchive[]): HTMLElement | null {
  if (!note && archives.length === 0) return null;
  return h("div", { class: "notice warn", role: "status", "data-testid": "timeline-archived" },
    h("p", null, note?.message ?? "Part of this timeline is only in the archives below."),
    archives.length === 0 ? null : h("ul", null, ...archives.map((a) => h("li", { "data-archive": a.file },
      h("code", null, a.file), ` — events ${a.fromSeq}–${a.toSeq}`, a.removedBefore ? `, left the log before ${time(a.removedBefore)}` : ""))));
}
