// Events in a window of time, from what this token may read: the audit log (every command and event, hashed) for
// operators, auditors and ADMINs; for a MEMBER, who reads no audit log, the timelines of its pods.
import { gql } from "./api";
import { session } from "./session";
import type { AuditEntry, EventRecord } from "./types";

export interface WindowEvent {
  at: string;
  what: string;
  resourceId: string | null;
  actor: string | null;
  tenantId: string | null;
}

export async function eventsBetween(from: Date, to: Date, podIds: string[], tenantId: string | null, limit = 5000): Promise<WindowEvent[]> {
  if (session.readsAudit()) {
    const out: WindowEvent[] = [];
    let after: string | null = null;
    while (out.length < limit) {
      const r: { auditLog: { nodes: AuditEntry[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await gql(
        `query($f: DateTime, $t: DateTime, $tenant: ID, $after: String) { auditLog(from: $f, to: $t, tenantId: $tenant, first: 1000, after: $after) {
          pageInfo { hasNextPage endCursor } nodes { seq at tenantId actor action resourceId outcome } } }`,
        { f: from.toISOString(), t: to.toISOString(), tenant: tenantId, after });
      out.push(...r.auditLog.nodes.map((e) => ({ at: e.at, what: e.action, resourceId: e.resourceId, actor: e.actor, tenantId: e.tenantId })));
      if (!r.auditLog.pageInfo.hasNextPage) break;
      after = r.auditLog.pageInfo.endCursor;
    }
    return out.slice(0, limit);
  }
  const all: WindowEvent[] = [];
  for (const id of podIds.slice(0, 20)) {
    const r = await gql<{ timeline: EventRecord[] }>(
      "query($id: ID!, $f: DateTime, $t: DateTime) { timeline(resourceId: $id, from: $f, to: $t) { at streamId type actor } }",
      { id, f: from.toISOString(), t: to.toISOString() });
    all.push(...r.timeline.map((e) => ({ at: e.at, what: e.type, resourceId: e.streamId, actor: e.actor, tenantId: null })));
  }
  const seen = new Set<string>();
  return all.filter((e) => {
    const k = `${e.at}|${e.what}|${e.resourceId}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  }).sort((a, b) => a.at.localeCompare(b.at)).slice(0, limit);
}
