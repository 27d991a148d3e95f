using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Agents;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Network;

/// <summary>A new peer set from the control plane: render, apply, and say which revision now runs.</summary>
public static class ApplyPeerSetHandler
{
    public static async Task Handle(ApplyPeerSet command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime, ILogger<HostAgent> logger)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        if (agent.WireGuard.Apply(command.Revision, command.Peers))
            logger.LogInformation("Host {Host} applied WireGuard peer set {Revision} ({Peers} peers)", agent.Name, command.Revision, command.Peers.Count);
        // Reported also when it was applied before: the control plane may have missed the first report.
        await new MessageBus(runtime) { CorrelationId = context.CorrelationId }
            .PublishAsync(new PeerSetApplied(agent.Id, Math.Max(command.Revision, agent.WireGuard.Revision)),
                new DeliveryOptions { GroupId = agent.Id.ToString() });
    }
}
