import type { Capabilities } from "./session";

export interface PageContext {
  params: string[];
  /** The part of the location's hash after '?': deep links such as #/replay?from=…&to=…&at=… */
  query: URLSearchParams;
  caps: Capabilities;
  /** Aborted when the user leaves the page: polls and streams stop. */
  signal: AbortSignal;
}

export type Page = (root: HTMLElement, ctx: PageContext) => void | Promise<void>;
