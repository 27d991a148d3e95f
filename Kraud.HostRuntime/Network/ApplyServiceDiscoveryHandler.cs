using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Agents;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The tenants of this host's microVMs changed, or their service discovery did: a host with a real network gives the table
/// to its resolver and the tenants' prefixes to its firewall. Revisions only move forward.
/// </summary>
public static class ApplyServiceDiscoveryHandler
{
    public static void Handle(ApplyServiceDiscovery command, HostAgents agents, ILogger<HostAgent> logger)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        lock (agent)
        {
            if (agent.ServiceDiscovery is { } current && current.Revision >= command.Revision) return;
            agent.Network?.ApplyServiceDiscovery(command);
            agent.ServiceDiscovery = command;
        }
        logger.LogInformation("Host {Host} applied service discovery {Revision} ({Tenants} tenants)", agent.Name, command.Revision, command.Tenants.Count);
    }
}
