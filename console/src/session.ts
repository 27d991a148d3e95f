// Who is signed in. The API token lives in sessionStorage only: it dies with the tab, is not shared between tabs, and
// never becomes a cookie a cross-site request could carry.
import type { Me } from "./types";

const KEY = "kraud.token";
let me: Me | null = null;
const listeners: (() => void)[] = [];

export const session = {
  token(): string | null {
    return sessionStorage.getItem(KEY);
  },
  me(): Me {
    if (!me) throw new Error("not signed in");
    return me;
  },
  signedIn(): boolean {
    return me !== null && this.token() !== null;
  },
  start(token: string, who: Me): void {
    sessionStorage.setItem(KEY, token);
    me = who;
    for (const l of listeners) l();
  },
  /** Kept only while a sign-in is being checked: gql() sends it. */
  trying(token: string | null): void {
    if (token === null) sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, token);
  },
  signOut(): void {
    sessionStorage.removeItem(KEY);
    me = null;
    for (const l of listeners) l();
  },
  /** The API no longer accepts the token (revoked): back to sign-in. */
  expired(): void {
    if (me) this.signOut();
  },
  /** Called after every sign-in and sign-out. */
  onChange(listener: () => void): void {
    listeners.push(listener);
  },
  isOperator(): boolean {
    return me?.role === "OPERATOR";
  },
  /** ADMIN, AUDITOR and the platform's roles read the audit log; MEMBER tokens do not (the API's rule). */
  readsAudit(): boolean {
    return me !== null && me.role !== "MEMBER";
  },
  /** AUDITOR tokens read audit data only. */
  readsResources(): boolean {
    return me !== null && me.role !== "AUDITOR";
  },
};

/** Fields this Kraud's schema has beyond what every Kraud has (e.g. Pod.imageDigest, Query.podLogs): asked for once. */
export interface Capabilities {
  has(type: string, field: string): boolean;
}
