import { gql } from "../api";
import { fill, h } from "../dom";
import { histogram, stackedColumns } from "../charts";
import { clock } from "../format";
import type { Page } from "../page";
import { allPods } from "../queries";
import type { PodState } from "../types";
import { errorBox } from "../ui";

const STATES: PodState[] = ["RUNNING", "BOOTING", "SCHEDULED", "PENDING", "STOPPING", "STOPPED", "FAILED", "UNSCHEDULABLE"];

/** Pods by state over the last hour (12 instants replayed with platformAt) and the boot time distribution of today's microVMs. */
export const overviewPage: Page = async (root, { caps }) => {
  const overTime = h("div", { "data-testid": "chart-states" }, h("p", { class: "status" }, "Replaying the last hour…"));
  const boots = h("div", { "data-testid": "chart-boots" }, h("p", { class: "status" }, "Loading…"));
  const minutes = h("select", { "aria-label": "Window" }, [15, 60, 360].map((m) => h("option", { value: m, selected: m === 60 }, m < 60 ? `${m} min` : `${m / 60} h`)));
  fill(root, h("div", { class: "page-head" }, h("h1", null, "Overview"), minutes), h("div", { class: "charts" }, overTime, boots));

  const drawStates = async () => {
    const span = Number(minutes.value) * 60_000;
    const now = Date.now();
    const instants = Array.from({ length: 12 }, (_, i) => new Date(now - span + (span * (i + 1)) / 12));
    try {
      // Two at a time: each folds the log up to its instant.
      const counts: Record<string, number>[] = new Array(instants.length);
      for (let i = 0; i < instants.length; i += 2) {
        await Promise.all(instants.slice(i, i + 2).map(async (at, j) => {
          const r = await gql<{ platformAt: { pods: { state: PodState }[] } }>("query($at: DateTime!) { platformAt(asOf: $at) { pods { state } } }", { at: at.toISOString() });
          const c: Record<string, number> = {};
          for (const p of r.platformAt.pods) c[p.state] = (c[p.state] ?? 0) + 1;
          counts[i + j] = c;
        }));
      }
      fill(overTime, stackedColumns(instants.map((d) => clock(d).slice(0, 5)),
        STATES.map((s) => ({ label: s, cls: `state-${s.toLowerCase()}`, values: counts.map((c) => c[s] ?? 0) })), "Pods by state over time"));
    } catch (e) {
      fill(overTime, errorBox(e));
    }
  };
  minutes.addEventListener("change", () => void drawStates());

  try {
    const { pods } = await allPods(caps);
    const times = pods.flatMap((p) => p.instances.map((i) => i.bootMs).filter((b): b is number => b !== null && b !== undefined));
    fill(boots, histogram(times, 10, "ms", "Boot time distribution (microVMs of current pods)"));
  } catch (e) {
    fill(boots, errorBox(e));
  }
  await drawStates();
};
