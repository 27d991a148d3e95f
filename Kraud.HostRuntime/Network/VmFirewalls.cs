using System.Collections.Concurrent;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Agents;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The firewalls of this host's exposed microVMs (DIRECT ingresses), rendered as the nftables ruleset that goes into
/// each microVM's configuration: traffic to the public address and port is let in only where a tenant rule allows it,
/// everything else is dropped. No driver loads it into a guest yet; the simulated hosts keep what they would load.
/// </summary>
public sealed class VmFirewalls
{
    private readonly ConcurrentDictionary<(Guid VmId, Guid IngressId), string> _rules = new();

    public void Apply(ApplyFirewall command)
    {
        if (command.Rules.Count == 0) _rules.TryRemove((command.VmId, command.IngressId), out _);
        else _rules[(command.VmId, command.IngressId)] = Render(command);
    }

    /// <summary>The rendered rulesets of one microVM (one per DIRECT ingress that exposes it).</summary>
    public IReadOnlyList<string> For(Guid vmId) => _rules.Where(kv => kv.Key.VmId == vmId).Select(kv => kv.Value).ToList();

    public static string Render(ApplyFirewall c)
    {
        var text = new StringBuilder()
            .Append("table inet kraud_direct {\n")
            .Append(CultureInfo.InvariantCulture, $"  # ingress {c.IngressId}: {c.Protocol.ToLowerInvariant()} {c.PublicAddress}:{c.PublicPort} -> microVM port {c.VmPort}\n")
            .Append("  chain input {\n    type filter hook input priority 0; policy drop;\n")
            .Append("    ct state established,related accept\n");
        foreach (var r in c.Rules)
        {
            var family = r.Source.Contains(':') ? "ip6" : "ip";
            text.Append(CultureInfo.InvariantCulture, $"    {family} saddr {r.Source} {r.Protocol.ToLowerInvariant()} dport {r.Port} {(r.Action == "ALLOW" ? "accept" : "drop")}\n");
        }
        return text.Append("  }\n}\n").ToString();
    }
}

public static class ApplyFirewallHandler
{
    public static void Handle(ApplyFirewall command, HostAgents agents, ILogger<HostAgent> logger)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        agent.Firewalls.Apply(command);
        logger.LogInformation("Host {Host}: firewall of microVM {VmId} for ingress {Ingress} has {Rules} rules", agent.Name, command.VmId, command.IngressId,
            command.Rules.Count);
    }
}
