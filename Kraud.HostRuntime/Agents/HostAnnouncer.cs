using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>At start, every host this process runs tells the control plane it exists (the control plane registers new ones).</summary>
public sealed class HostAnnouncer(HostAgents agents, IWolverineRuntime runtime, ILogger<HostAnnouncer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // One bus (one correlation id) per host: their registrations are separate stories. Grouped by zone: the first
        // registrations of a zone all write its stream, so the control plane takes them one after the other.
        foreach (var agent in agents.All)
            await new MessageBus(runtime).PublishAsync(agent.Announcement(), new DeliveryOptions { GroupId = "zone:" + agent.Definition.Zone });
        if (agents.All.Count > 0)
            logger.LogInformation("Host runtime serves {Count} host(s): {Hosts}", agents.All.Count,
                string.Join(", ", agents.All.Select(a => $"{a.Name} ({a.Definition.Role.ToLowerInvariant()}, {a.Definition.Zone}, {a.Driver.Name})")));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
