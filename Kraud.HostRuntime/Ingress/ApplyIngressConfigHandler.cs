using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Agents;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Ingress;

/// <summary>What this INGRESS host serves changed: its proxy reloads in place; revisions only move forward.</summary>
public static class ApplyIngressConfigHandler
{
    public static void Handle(ApplyIngressConfig command, HostAgents agents, ILogger<HostAgent> logger)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        lock (agent)
        {
            if (agent.IngressConfig is { } current && current.Revision >= command.Revision) return;
            agent.Ingress?.Apply(command);
            agent.IngressConfig = command;
        }
        logger.LogInformation("Host {Host} serves ingress configuration {Revision}: {Sites} ingresses, {Routes} routes", agent.Name, command.Revision,
            command.Sites.Count, command.Sites.Sum(s => s.Routes.Count));
    }
}
