import { gql } from "../api";
import { fill, h, table } from "../dom";
import type { Page } from "../page";
import { hostLabel, hostNames } from "../queries";
import { errorBox } from "../ui";

interface Vpc {
  id: string;
  tenantId: string;
  ipv6Prefix: string;
  ipv4Overlay: string | null;
  encryption: string;
  peers: { hostId: string; publicKey: string; endpoint: string | null; allowedIps: string[] }[];
  namespaces: { name: string; ipv4Cidr: string; ipv6Cidr: string }[];
  dns: { qualifiedName: string; ip4: string[]; ip6: string[] }[];
}

/** The tenant's VPC: its prefixes, the WireGuard peers that carry it, and the names its resolver answers. */
export const vpcPage: Page = async (root) => {
  const hosts = await hostNames();
  fill(root, h("div", { class: "page-head" }, h("h1", null, "VPC")), h("p", { class: "status" }, "Loading…"));
  try {
    const r = await gql<{ vpcs: Vpc[] }>(`{ vpcs { id tenantId ipv6Prefix ipv4Overlay encryption
      peers { hostId publicKey endpoint allowedIps } namespaces { name ipv4Cidr ipv6Cidr } dns { qualifiedName ip4 ip6 } } }`);
    fill(root, h("div", { class: "page-head" }, h("h1", null, "VPC")),
      r.vpcs.length === 0 ? h("p", { class: "empty" }, "No VPC.") : r.vpcs.map((v) => h("section", { class: "panel", "data-vpc": v.id },
        h("dl", { class: "details" },
          h("dt", null, "IPv6 prefix"), h("dd", null, h("code", { "data-testid": "vpc-prefix" }, v.ipv6Prefix)),
          h("dt", null, "IPv4 overlay"), h("dd", null, v.ipv4Overlay ?? "— (made with the first pod)"),
          h("dt", null, "Encryption"), h("dd", null, v.encryption)),
        h("h3", null, "Namespaces"),
        v.namespaces.length ? table(["Namespace", "IPv4", "IPv6"], v.namespaces.map((n) => [n.name, n.ipv4Cidr, n.ipv6Cidr])) : h("p", { class: "empty" }, "None yet."),
        h("h3", null, "WireGuard peers"),
        v.peers.length ? table(["Host", "Public key", "Endpoint", "Allowed IPs"], v.peers.map((p) =>
          [hostLabel(hosts, p.hostId), h("code", null, p.publicKey), p.endpoint ?? "—", p.allowedIps.join(", ")])) : h("p", { class: "empty" }, "No peers: no microVMs run."),
        h("h3", null, "Service discovery"),
        v.dns.length ? table(["Name", "IPv4", "IPv6"], v.dns.map((d) => [d.qualifiedName, d.ip4.join(", ") || "—", d.ip6.join(", ") || "—"]))
          : h("p", { class: "empty" }, "No records."))));
  } catch (e) {
    fill(root, errorBox(e));
  }
};
