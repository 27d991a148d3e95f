// Formatting shared by the pages: times in the viewer's zone with the offset shown, ids shortened, states as badges.
import { h } from "./dom";

export function time(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

export function clock(iso: string | Date): string {
  const d = typeof iso === "string" ? new Date(iso) : iso;
  return d.toLocaleTimeString(undefined, { hour12: false });
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : "—";
}

export function ms(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : `${Math.round(value)} ms`;
}

/** A state as a coloured badge; the colour class is derived from the state name (states are enum values, never free text). */
export function badge(state: string, title?: string | null): HTMLElement {
  return h("span", { class: `badge state-${state.toLowerCase().replace(/[^a-z_]/g, "")}`, "data-state": state, title: title ?? null }, state);
}

/** datetime-local input value (local time, minutes) for a Date, and back. */
export function toLocalInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fromLocalInput(value: string): Date | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}
