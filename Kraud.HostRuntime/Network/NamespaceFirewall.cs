using System.Text;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The nftables table of a host namespace (inet kraud). A microVM's packets (they come in on a tap) are forwarded only to
/// addresses of its own tenant: the pairs of the tenant's overlays (IPv4 /23s, and its IPv6 /48) are in a set the control
/// plane's service discovery push keeps; everything else a guest sends through the host is dropped, the underlay among it.
/// To the namespace itself a guest may only ask its resolver (port 53) and do IPv6 neighbour discovery, so neither the
/// host runtime's sockets nor PostgreSQL (in the machine's namespace, behind the underlay) are reachable. Packets that
/// arrive through WireGuard towards a tap pass the same tenant check, or come from an ingress proxy's tunnel address (TCP
/// only; WireGuard admits such a packet only from an ingress host whose routes lead to a microVM on this host).
/// Anything else towards a tap (from the underlay, say) is dropped, except what a DIRECT ingress's exposure let in: the
/// public address and port are translated (dnat) to the microVM's address and port, and the tenant's firewall rules
/// decide in the <c>direct</c> chain, refilled with every change (<see cref="Exposures"/>).
/// </summary>
public static class NamespaceFirewall
{
    public const string Table = "kraud";

    public static string Ruleset(string underlayCidr) => $$"""
        table inet {{Table}}
        delete table inet {{Table}}
        table inet {{Table}} {
          set same4 { type ipv4_addr . ipv4_addr; flags interval; }
          set same6 { type ipv6_addr . ipv6_addr; flags interval; }
          chain forward {
            type filter hook forward priority 0; policy accept;
            ct state established,related accept
            iifname "{{HostNamespace.TapPrefix}}*" ip daddr {{underlayCidr}} counter drop
            iifname "{{HostNamespace.TapPrefix}}*" ip saddr . ip daddr @same4 accept
            iifname "{{HostNamespace.TapPrefix}}*" ip6 saddr . ip6 daddr @same6 accept
            iifname "{{HostNamespace.TapPrefix}}*" counter drop
            iifname "krw*" oifname "{{HostNamespace.TapPrefix}}*" ip saddr . ip daddr @same4 accept
            iifname "krw*" oifname "{{HostNamespace.TapPrefix}}*" ip saddr {{HostNamespace.IngressTunnelRange}} meta l4proto tcp accept
            iifname "krw*" oifname "{{HostNamespace.TapPrefix}}*" ip6 saddr . ip6 daddr @same6 accept
            iifname "krw*" oifname "{{HostNamespace.TapPrefix}}*" counter drop
            oifname "{{HostNamespace.TapPrefix}}*" ct status dnat jump direct
            oifname "{{HostNamespace.TapPrefix}}*" counter drop
          }
          chain direct {
          }
          chain expose {
            type nat hook prerouting priority dstnat; policy accept;
          }
          chain input {
            type filter hook input priority 0; policy accept;
            iifname != "{{HostNamespace.TapPrefix}}*" accept
            ct state established,related accept
            udp dport 53 accept
            tcp dport 53 accept
            icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept
            counter drop
          }
        }

        """;

    /// <summary>
    /// The exposures of DIRECT ingresses whose microVM runs here, as one nft transaction: the translation of each public
    /// address and port to the microVM (on packets from the underlay only), and its tenant's rules in order (the first
    /// that matches wins; a rule's port is the microVM's port, as the rules the guest's own firewall would hold), then a drop for whatever no rule
    /// allowed. IPv6 rules do not apply: public addresses are IPv4.
    /// </summary>
    public static string Exposures(IReadOnlyList<(ApplyFirewall Exposure, string VmIp4)> exposures)
    {
        var text = new StringBuilder()
            .Append("flush chain inet ").Append(Table).Append(" direct\n")
            .Append("flush chain inet ").Append(Table).Append(" expose\n");
        foreach (var (e, vm) in exposures)
        {
            var protocol = e.Protocol.ToLowerInvariant();
            text.Append(CultureInfo.InvariantCulture,
                $"add rule inet {Table} expose iifname \"{HostNamespace.UnderlayDevice}\" ip daddr {e.PublicAddress} {protocol} dport {e.PublicPort} dnat ip to {vm}:{e.VmPort}\n");
            var match = $"ip daddr {vm} {protocol} dport {e.VmPort} ct original ip daddr {e.PublicAddress}";
            foreach (var rule in e.Rules.Where(r => !r.Source.Contains(':') && r.Protocol.Equals(e.Protocol, StringComparison.OrdinalIgnoreCase) && r.Port == e.VmPort))
                text.Append(CultureInfo.InvariantCulture,
                    $"add rule inet {Table} direct {match} ip saddr {rule.Source} counter {(rule.Action.Equals("ALLOW", StringComparison.OrdinalIgnoreCase) ? "accept" : "drop")} comment \"{e.IngressId:N}\"\n");
            text.Append(CultureInfo.InvariantCulture, $"add rule inet {Table} direct {match} counter drop comment \"{e.IngressId:N} default\"\n");
        }
        return text.ToString();
    }

    /// <summary>Replaces the same-tenant pairs: every overlay of a tenant with every other of the same tenant.</summary>
    public static string TenantSets(IReadOnlyList<TenantNetwork> tenants)
    {
        var text = new StringBuilder()
            .Append("flush set inet ").Append(Table).Append(" same4\n")
            .Append("flush set inet ").Append(Table).Append(" same6\n");
        var pairs4 = tenants.SelectMany(t => t.Namespaces.SelectMany(a => t.Namespaces.Select(b => $"{a.Ipv4Cidr} . {b.Ipv4Cidr}"))).ToList();
        var pairs6 = tenants.Select(t => $"{t.Ipv6Prefix} . {t.Ipv6Prefix}").ToList();
        if (pairs4.Count > 0) text.Append("add element inet ").Append(Table).Append(" same4 { ").AppendJoin(", ", pairs4).Append(" }\n");
        if (pairs6.Count > 0) text.Append("add element inet ").Append(Table).Append(" same6 { ").AppendJoin(", ", pairs6).Append(" }\n");
        return text.ToString();
    }
}
