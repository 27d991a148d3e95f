using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>
/// At start, every host this process runs tells the control plane it exists (the control plane registers new ones). A host
/// with a hypervisor announces itself again, with its accelerator, as soon as that is chosen: finding the guest image and
/// probing KVM can take seconds, and registration must not wait for them.
/// </summary>
public sealed class HostAnnouncer(HostAgents agents, IWolverineRuntime runtime, ILogger<HostAnnouncer> logger) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _accelerators = Task.CompletedTask;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var agent in agents.All)
        {
            // Replicas kept across a restart are served again before the host says it is there.
            if (agent.Exports is { } exports) await exports.StartAsync(cancellationToken);
            await AnnounceAsync(agent, accelerator: null);
        }
        if (agents.All.Count > 0)
            logger.LogInformation("Host runtime serves {Count} host(s): {Hosts}", agents.All.Count,
                string.Join(", ", agents.All.Select(a => $"{a.Name} ({a.Definition.Role.ToLowerInvariant()}, {a.Definition.Zone}, {a.Driver.Name})")));
        _accelerators = Task.WhenAll(agents.All.Select(agent => AnnounceAcceleratorAsync(agent, _stopping.Token)));
    }

    /// <summary>
    /// One bus (one correlation id) per announcement: registrations are separate stories. Grouped by zone: the first
    /// registrations of a zone all write its stream, so the control plane takes them one after the other.
    /// </summary>
    private Task AnnounceAsync(HostAgent agent, Drivers.Accelerator? accelerator) =>
        new MessageBus(runtime).PublishAsync(agent.Announcement(accelerator), new DeliveryOptions { GroupId = "zone:" + agent.Definition.Zone }).AsTask();

    /// <summary>A host whose hypervisor cannot be set up (no QEMU, no guest image) stays without one: its boots fail with the reason.</summary>
    private async Task AnnounceAcceleratorAsync(HostAgent agent, CancellationToken ct)
    {
        // A storage host runs no guests: nothing to accelerate, and no probe guest to boot.
        if (agent.Definition.Role == "Storage") return;
        try
        {
            if (await agent.Driver.AcceleratorAsync(ct) is { } accelerator) await AnnounceAsync(agent, accelerator);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception e)
        {
            logger.LogWarning("Host {Host}: no accelerator could be chosen for its guests: {Reason}", agent.Name, e.Message);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _accelerators.WaitAsync(cancellationToken);
    }
}
