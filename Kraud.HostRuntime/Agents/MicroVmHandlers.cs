using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>
/// Host commands as they arrive on the host's queue. Reports are sent at once (not when the handler ends) so that the
/// control plane sees BOOTING while a slow guest is still coming up; they keep the command's correlation id.
/// </summary>
public static class BootMicroVmHandler
{
    /// <summary>
    /// Wolverine cancels a handler after 60 s by default: a TCG guest on a loaded host took longer, its boot was cancelled
    /// without a report, and the pod stayed BOOTING (QemuHostSpecs, seen in a full test run). The driver enforces its own
    /// boot timeout (Fleet:Qemu:BootTimeoutSeconds) and reports the failure; this bound is only a backstop above it.
    /// </summary>
    public const int ExecutionTimeoutSeconds = 900;

    /// <summary>How long a boot may take before the host reports that it started: a quicker boot reports only that it booted.</summary>
    public static readonly TimeSpan BootingReportAfter = TimeSpan.FromMilliseconds(200);

    [Wolverine.Attributes.MessageTimeout(ExecutionTimeoutSeconds)]
    public static async Task Handle(BootMicroVm command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        var spec = command.Spec;
        using var scope = logger.BeginScope(new Dictionary<string, object?> { ["CorrelationId"] = context.CorrelationId, ["Host"] = agent.Name });
        // The boot is a span of the trace that asked for the pod; the reports sent from inside it carry it back.
        using var activity = Configuration.TelemetrySetup.HostRuntime.StartActivity("kraud.microvm.boot");
        activity?.SetTag("kraud.host", agent.Name);
        activity?.SetTag("kraud.microvm.id", spec.VmId.ToString());
        activity?.SetTag("kraud.pod.id", spec.PodId.ToString());
        var reports = Reports.For(runtime, context);
        var keys = new Dictionary<Guid, byte[]>();
        try
        {
            // A GFS volume mounted from its file server has no key here: the file server's hypervisor holds it.
            foreach (var volume in spec.Attachments.Where(v => v.FileServer is null)) keys[volume.VolumeId] = Unwrap(agent, volume);
            var boot = agent.Driver.BootAsync(spec, keys, ct);
            // BOOTING is news only while a guest takes its time: a boot that is over at once sends its booted report alone,
            // one transaction on the pod's stream instead of two back to back (the pod goes from SCHEDULED to RUNNING).
            if (await Task.WhenAny(boot, Task.Delay(BootingReportAfter, ct)) != boot)
                await reports.PublishAsync(new MicroVmBootStarted(agent.Id, spec.VmId, spec.PodId));
            var result = await boot;
            logger.LogInformation("Host {Host} booted microVM {VmId} of pod {PodId} in {BootMs:F1} ms{Again}",
                agent.Name, spec.VmId, spec.PodId, result.BootMs, result.AlreadyRunning ? " (already running)" : "");
            // Also when it was running already: a boot sent again (the control plane took a stale heartbeat for a vanished
            // VM) waits for this report, and the pod ignores a second one for a VM it knows is running.
            activity?.SetTag("kraud.microvm.boot_ms", result.BootMs);
            await reports.PublishAsync(new MicroVmBooted(agent.Id, spec.VmId, spec.PodId, result.BootMs, result.Attestation, result.EncryptedEphemeralGiB,
                result.ImageDigest, result.DownloadedBytes));
            agent.BootReported(spec.VmId);
        }
        catch (MicroVmBootException e)
        {
            logger.LogWarning("Host {Host} failed to boot microVM {VmId} of pod {PodId}: {Reason}", agent.Name, spec.VmId, spec.PodId, e.Message);
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, e.Message);
            await reports.PublishAsync(new MicroVmFailed(agent.Id, spec.VmId, spec.PodId, e.Message));
        }
        finally
        {
            // The driver keeps its own copies for as long as the VM runs.
            foreach (var key in keys.Values) System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
        }
    }

    private static byte[] Unwrap(HostAgent agent, VolumeAttachmentSpec volume)
    {
        if (volume.Key is null) throw new MicroVmBootException($"volume {volume.VolumeId} has no data key yet: it is not set up");
        try
        {
            return agent.Kek.Unwrap(volume.Key);
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new MicroVmBootException($"cannot unwrap the data key of volume {volume.VolumeId}: {e.Message}");
        }
    }
}

public static class StopMicroVmHandler
{
    public static async Task Handle(StopMicroVm command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        using var scope = logger.BeginScope(new Dictionary<string, object?> { ["CorrelationId"] = context.CorrelationId, ["Host"] = agent.Name });
        var hadKey = agent.Driver.HoldsEphemeralKey(command.VmId);
        var wasRunning = await agent.Driver.StopAsync(command.VmId, ct);
        logger.LogInformation("Host {Host} stopped microVM {VmId}{Note}", agent.Name, command.VmId, wasRunning ? "" : " (was not running)");
        // A VM that was never running here is stopped all the same: the control plane waits for this report either way.
        await Reports.For(runtime, context).PublishAsync(new MicroVmStopped(agent.Id, command.VmId, command.PodId,
            EphemeralErased: hadKey && !agent.Driver.HoldsEphemeralKey(command.VmId)));
    }
}

/// <summary>The host is off: the command stays queued and is tried again later, as it would wait for a rebooting machine.</summary>
public sealed class HostPoweredOffException(string host) : Exception($"Host {host} is powered off.");

internal static class Power
{
    public static HostAgent RequirePower(this HostAgent agent) => agent.PoweredOn ? agent : throw new HostPoweredOffException(agent.Name);
}

/// <summary>Sends a host's reports at once, keeping the command's correlation id; the pod id is the group id.</summary>
internal sealed class Reports(IMessageBus bus)
{
    /// <summary>Reports about one volume are handled in order too: the volume id is their group id.</summary>
    public ValueTask PublishAsync(IVolumeReport report) =>
        bus.PublishAsync(report, new DeliveryOptions { GroupId = report.VolumeId.ToString() });

    public static Reports For(IWolverineRuntime runtime, IMessageContext context) =>
        new(new MessageBus(runtime) { CorrelationId = context.CorrelationId });

    /// <summary>Reports about one pod must be handled in order, so they share a group id: the control plane partitions by it.</summary>
    public ValueTask PublishAsync(IMicroVmReport report) =>
        bus.PublishAsync(report, new DeliveryOptions { GroupId = report.PodId.ToString() });
}
