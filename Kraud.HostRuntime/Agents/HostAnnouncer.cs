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
        {
            // Replicas kept across a restart are served again before the host says it is there.
            if (agent.Exports is { } exports) await exports.StartAsync(cancellationToken);
            await new MessageBus(runtime).PublishAsync(agent.Announcement(await AcceleratorOfAsync(agent, cancellationToken)),
                new DeliveryOptions { GroupId = "zone:" + agent.Definition.Zone });
        }
        if (agents.All.Count > 0)
            logger.LogInformation("Host runtime serves {Count} host(s): {Hosts}", agents.All.Count,
                string.Join(", ", agents.All.Select(a => $"{a.Name} ({a.Definition.Role.ToLowerInvariant()}, {a.Definition.Zone}, {a.Driver.Name})")));
    }

    /// <summary>
    /// Decided before the host is announced, so operators see with the host how its guests run. A host whose hypervisor cannot
    /// be set up (no QEMU, no guest image) is still announced: its boots will fail with the reason.
    /// </summary>
    private async Task<Drivers.Accelerator?> AcceleratorOfAsync(HostAgent agent, CancellationToken ct)
    {
        // A storage host runs no guests: nothing to accelerate, and no probe guest to boot.
        if (agent.Definition.Role == "Storage") return null;
        try
        {
            return await agent.Driver.AcceleratorAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("Host {Host}: no accelerator could be chosen for its guests: {Reason}", agent.Name, e.Message);
            return null;
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
