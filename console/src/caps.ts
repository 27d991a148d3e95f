// What this Kraud's schema offers beyond the fields every Kraud has: read once by introspection, so the console shows
// Pod.imageDigest or podLogs where the API has them and says plainly where it does not.
import { gql } from "./api";
import type { Capabilities } from "./session";

interface TypeFields {
  fields: { name: string }[] | null;
}

export async function loadCapabilities(): Promise<Capabilities> {
  const data = await gql<Record<string, TypeFields | null>>(`{
    Query: __type(name: "Query") { fields { name } }
    Mutation: __type(name: "Mutation") { fields { name } }
    Pod: __type(name: "Pod") { fields { name } }
    MicroVm: __type(name: "MicroVm") { fields { name } }
  }`);
  const known = new Set<string>();
  for (const [type, t] of Object.entries(data)) for (const f of t?.fields ?? []) known.add(`${type}.${f.name}`);
  return { has: (type, name) => known.has(`${type}.${name}`) };
}
