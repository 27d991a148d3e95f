// GraphQL selections shared by pages; optional fields only where this Kraud's schema has them.
import { gql } from "./api";
import { session, type Capabilities } from "./session";
import type { Pod, Tenant } from "./types";

export function microVmFields(caps: Capabilities): string {
  return `id podId hostId state bootMs ip4 ip6 startedAt${caps.has("MicroVm", "exitCode") ? " exitCode" : ""}`;
}

export function podFields(caps: Capabilities): string {
  return `id name namespace tenantId image${caps.has("Pod", "imageDigest") ? " imageDigest" : ""} cpu memoryMiB replicas confidential
    state reason version createdAt instances { ${microVmFields(caps)} } attestation { measurement verified verifiedAt }`;
}

/** Every pod the token sees, page by page (the API's pages hold up to 100). */
export async function allPods(caps: Capabilities, limit = 1000): Promise<{ pods: Pod[]; total: number }> {
  const pods: Pod[] = [];
  let after: string | null = null;
  let total = 0;
  for (;;) {
    const r: { pods: { nodes: Pod[]; totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await gql(
      `query($after: String) { pods(first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { ${podFields(caps)} } } }`,
      { after });
    pods.push(...r.pods.nodes);
    total = r.pods.totalCount;
    if (!r.pods.pageInfo.hasNextPage || pods.length >= limit) break;
    after = r.pods.pageInfo.endCursor;
  }
  return { pods, total };
}

/** Host names by id: operators read the inventory; a tenant's token sees host ids only (the API's rule). */
export async function hostNames(): Promise<Map<string, string>> {
  if (!session.isOperator()) return new Map();
  const r = await gql<{ hosts: { id: string; name: string }[] }>("{ hosts { id name } }");
  return new Map(r.hosts.map((x) => [x.id, x.name]));
}

export async function tenantNames(): Promise<Map<string, string>> {
  if (!session.isOperator()) return new Map();
  const r = await gql<{ tenants: Tenant[] }>("{ tenants { id name } }");
  return new Map(r.tenants.map((t) => [t.id, t.name]));
}

export function hostLabel(names: Map<string, string>, id: string): string {
  return names.get(id) ?? `host ${id.slice(0, 8)}`;
}
