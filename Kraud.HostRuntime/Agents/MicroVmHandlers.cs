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
        var (_, late) = await BootOneAsync(agent, command.Spec, Reports.For(runtime, context), context.CorrelationId, traceParent: null,
            Task.Delay(BootingReportAfter, ct), alone: true, logger, ct);
        await late;
    }

    /// <summary>
    /// A scheduler batch's microVMs for this host, booted side by side. Those up within the BOOTING window are answered in
    /// one report (one queue row, and one transaction at the control plane); a slower one reports BOOTING and then its end
    /// on its own, as a boot sent alone does.
    /// </summary>
    [Wolverine.Attributes.MessageTimeout(ExecutionTimeoutSeconds)]
    public static async Task Handle(BootMicroVms command, HostAgents agents, IWolverineRuntime runtime, ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        var window = Task.Delay(BootingReportAfter, ct);
        var boots = await Task.WhenAll(command.Boots.Select(b => BootOneAsync(agent, b.Message.Spec,
            new Reports(new MessageBus(runtime) { CorrelationId = b.CorrelationId }), b.CorrelationId, b.TraceParent, window, alone: false, logger, ct)));
        var quick = boots.Select(b => b.Quick).OfType<Batched<IMicroVmReport>>().ToList();
        if (quick.Count > 0)
        {
            var booted = quick.Where(q => q.Message is MicroVmBooted).Select(q => new Batched<MicroVmBooted>((MicroVmBooted)q.Message, q.CorrelationId, q.TraceParent)).ToList();
            var failed = quick.Where(q => q.Message is MicroVmFailed).Select(q => new Batched<MicroVmFailed>((MicroVmFailed)q.Message, q.CorrelationId, q.TraceParent)).ToList();
            await Reports.PublishAsync(new MessageBus(runtime), new MicroVmBootReports(agent.Id, booted, failed));
            foreach (var b in booted) agent.BootReported(b.Message.VmId);
        }
        await Task.WhenAll(boots.Select(b => b.Late));
    }

    /// <summary>
    /// Boots one microVM. A boot over within <paramref name="window"/> is answered by the caller (<paramref name="alone"/>: at
    /// once, here); a slower one reports BOOTING, and <c>Late</c> then reports how it ended.
    /// </summary>
    /// <param name="traceParent">The trace of the pod's placement, when the command came in a list (else the handler's own span is the parent).</param>
    private static async Task<(Batched<IMicroVmReport>? Quick, Task Late)> BootOneAsync(HostAgent agent, MicroVmSpec spec, Reports reports,
        string? correlationId, string? traceParent, Task window, bool alone, ILogger logger, CancellationToken ct)
    {
        using var scope = logger.BeginScope(new Dictionary<string, object?> { ["CorrelationId"] = correlationId, ["Host"] = agent.Name });
        // The boot is a span of the trace that asked for the pod; the reports sent from inside it carry it back.
        var activity = traceParent is null
            ? Configuration.TelemetrySetup.HostRuntime.StartActivity("kraud.microvm.boot")
            : Configuration.TelemetrySetup.HostRuntime.StartActivity("kraud.microvm.boot", System.Diagnostics.ActivityKind.Internal, traceParent);
        activity?.SetTag("kraud.host", agent.Name);
        activity?.SetTag("kraud.microvm.id", spec.VmId.ToString());
        activity?.SetTag("kraud.pod.id", spec.PodId.ToString());
        var boot = BootAsync(agent, spec, activity, logger, ct);
        // BOOTING is news only while a guest takes its time: a boot that is over at once sends its booted report alone,
        // one transaction on the pod's stream instead of two back to back (the pod goes from SCHEDULED to RUNNING).
        if (await Task.WhenAny(boot, window) == boot)
        {
            using (activity)
            {
                var report = await boot;
                if (!agent.BootEnded(report, spec.TenantId)) return (null, Task.CompletedTask);
                if (!alone) return (new Batched<IMicroVmReport>(report, correlationId, activity?.Id), Task.CompletedTask);
                await PublishAsync(agent, reports, report);
                return (null, Task.CompletedTask);
            }
        }
        try
        {
            await reports.PublishAsync(new MicroVmBootStarted(agent.Id, spec.VmId, spec.PodId));
        }
        catch
        {
            activity?.Dispose();
            throw;
        }
        return (null, LateAsync());

        async Task LateAsync()
        {
            using (activity)
            {
                var report = await boot;
                if (agent.BootEnded(report, spec.TenantId)) await PublishAsync(agent, reports, report);
            }
        }
    }

    private static async Task PublishAsync(HostAgent agent, Reports reports, IMicroVmReport report)
    {
        await reports.PublishAsync(report);
        if (report is MicroVmBooted) agent.BootReported(report.VmId);
    }

    /// <summary>Boots through the driver: <see cref="MicroVmBooted"/>, or <see cref="MicroVmFailed"/> with the driver's reason.</summary>
    private static async Task<IMicroVmReport> BootAsync(HostAgent agent, MicroVmSpec spec, System.Diagnostics.Activity? activity, ILogger logger,
        CancellationToken ct)
    {
        var keys = new Dictionary<Guid, byte[]>();
        try
        {
            // A GFS volume mounted from its file server has no key here: the file server's hypervisor holds it.
            foreach (var volume in spec.Attachments.Where(v => v.FileServer is null)) keys[volume.VolumeId] = Unwrap(agent, volume);
            var result = await agent.Driver.BootAsync(spec, keys, ct);
            logger.LogInformation("Host {Host} booted microVM {VmId} of pod {PodId} in {BootMs:F1} ms{Again}",
                agent.Name, spec.VmId, spec.PodId, result.BootMs, result.AlreadyRunning ? " (already running)" : "");
            // Also when it was running already: a boot sent again (the control plane took a stale heartbeat for a vanished
            // VM) waits for this report, and the pod ignores a second one for a VM it knows is running.
            activity?.SetTag("kraud.microvm.boot_ms", result.BootMs);
            return new MicroVmBooted(agent.Id, spec.VmId, spec.PodId, result.BootMs, result.Attestation, result.EncryptedEphemeralGiB,
                result.ImageDigest, result.DownloadedBytes);
        }
        catch (MicroVmBootException e)
        {
            logger.LogWarning("Host {Host} failed to boot microVM {VmId} of pod {PodId}: {Reason}", agent.Name, spec.VmId, spec.PodId, e.Message);
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, e.Message);
            return new MicroVmFailed(agent.Id, spec.VmId, spec.PodId, e.Message);
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
        agent.ForgetBoot(command.VmId);
        logger.LogInformation("Host {Host} stopped microVM {VmId}{Note}", agent.Name, command.VmId, wasRunning ? "" : " (was not running)");
        // A VM that was never running here is stopped all the same: the control plane waits for this report either way.
        await Reports.For(runtime, context).PublishAsync(new MicroVmStopped(agent.Id, command.VmId, command.PodId,
            EphemeralErased: hadKey && !agent.Driver.HoldsEphemeralKey(command.VmId)));
    }
}

/// <summary>
/// The control plane asks again how boots ended: it never heard (CI saw a host's batch of boot reports dead-lettered when two
/// threads of a node built Wolverine's handler for it at once, and its pods stayed SCHEDULED with their microVMs running).
/// The host sends what it sent before; the control plane's decider ignores a report it has recorded already.
/// </summary>
public static class ReportMicroVmsHandler
{
    public static async Task Handle(ReportMicroVms command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger)
    {
        var agent = agents.Get(command.HostId);
        // A host that is off says nothing: its VMs are lost, and the control plane learns it from the missing heartbeats.
        if (!agent.PoweredOn) return;
        var reports = Reports.For(runtime, context);
        // A boot under way reports when it ends; a VM this host never booted or no longer runs has nothing to tell.
        foreach (var outcome in command.VmIds.Select(agent.BootOutcome).OfType<IMicroVmReport>())
        {
            logger.LogWarning("Host {Host} reports again how the boot of microVM {VmId} of pod {PodId} ended: the control plane had not heard",
                agent.Name, outcome.VmId, outcome.PodId);
            await reports.PublishAsync(outcome);
            if (outcome is MicroVmBooted) agent.BootReported(outcome.VmId);
        }
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

    /// <summary>
    /// A batch's reports name pods no other report of this host is about while it travels (a pod in it reported nothing
    /// else of this boot): grouped by host, so one host's batches are recorded one after the other.
    /// </summary>
    public static ValueTask PublishAsync(IMessageBus bus, MicroVmBootReports reports) =>
        bus.PublishAsync(reports, new DeliveryOptions { GroupId = "host:" + reports.HostId });
}
