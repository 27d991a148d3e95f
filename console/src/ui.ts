// Small pieces every page uses: error boxes, polling, busy buttons.
import { ApiError } from "./api";
import { h } from "./dom";

export function errorBox(e: unknown): HTMLElement {
  const code = e instanceof ApiError ? e.code : "ERROR";
  const message = e instanceof Error ? e.message : String(e);
  return h("div", { class: "error", role: "alert", "data-code": code }, h("strong", null, code), " ", message);
}

export function notice(text: string, kind: "info" | "ok" | "warn" = "info"): HTMLElement {
  return h("div", { class: `notice ${kind}`, role: "status" }, text);
}

/**
 * Runs fn now and every `everyMs` after it finished, until the page is left (signal). A hidden tab does not poll; the
 * first tick after it shows again catches up.
 */
export function poll(signal: AbortSignal, everyMs: number, fn: () => Promise<void>): () => Promise<void> {
  let timer: number | undefined;
  let running: Promise<void> | null = null;
  const tick = async (): Promise<void> => {
    if (signal.aborted) return;
    window.clearTimeout(timer);
    if (!document.hidden) {
      running ??= fn().finally(() => (running = null));
      await running;
    }
    if (!signal.aborted) timer = window.setTimeout(tick, everyMs);
  };
  signal.addEventListener("abort", () => window.clearTimeout(timer));
  void tick();
  return tick; // call to refresh at once (after an action)
}

/** Disables a button while its action runs, so a double click sends one command. */
export async function busy<T>(button: HTMLButtonElement, action: () => Promise<T>): Promise<T> {
  button.disabled = true;
  button.classList.add("busy");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
  }
}

export function section(title: string, ...children: (Node | string | null)[]): HTMLElement {
  return h("section", { class: "panel" }, h("h2", null, title), ...children);
}
