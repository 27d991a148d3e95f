using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>A compute host with a real hypervisor makes a new volume's data key and writes its LUKS header to every replica.</summary>
public static class FormatVolumeHandler
{
    [Wolverine.Attributes.MessageTimeout(BootMicroVmHandler.ExecutionTimeoutSeconds)]
    public static async Task Handle(FormatVolume command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        var reports = Reports.For(runtime, context);
        try
        {
            var worker = VolumeWorkers.Of(agent, logger);
            var key = await worker.FormatAsync(command, agent.Kek, ct);
            await reports.PublishAsync(new VolumeFormatted(agent.Id, command.VolumeId, key));
        }
        catch (Exception e) when (e is not HostPoweredOffException && !ct.IsCancellationRequested)
        {
            // Any failure is reported, expected or not: unreported, the volume would wait for this host's format forever
            // (the control plane only takes work back from a host that failed). A cancelled one is the host stopping, and a
            // powered-off host runs it again when it is back.
            logger.LogWarning(e, "Host {Host} could not format volume {VolumeId}: {Reason}", agent.Name, command.VolumeId, e.Message);
            await reports.PublishAsync(new VolumeWorkFailedReport(agent.Id, command.VolumeId, null, VolumeWorkers.Reason(e)));
        }
    }
}

/// <summary>
/// Fills a replacement replica: in the QEMU of the microVM that has the volume attached (the guest keeps running), or with
/// a storage daemon of this host when no guest has it. Progress goes out about once a second.
/// </summary>
public static class ResyncVolumeReplicaHandler
{
    /// <summary>
    /// A copy runs as long as the volume is big (a 20 GiB volume at the 12 MB/s measured here: half an hour), far past
    /// Wolverine's default of 60 s, which would cancel it without a report and leave the work hanging. Progress goes out
    /// every second, and work whose compute host failed is abandoned by the control plane, so a day is only a backstop.
    /// </summary>
    [Wolverine.Attributes.MessageTimeout(24 * 3600)]
    public static async Task Handle(ResyncVolumeReplica command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        var reports = Reports.For(runtime, context);
        Task Progress(CopyProgress p) => reports.PublishAsync(new ReplicaResyncProgress(agent.Id, command.VolumeId, command.Target.HostId, p.SyncedBytes,
            p.TotalBytes, p.BytesPerSecond)).AsTask();
        try
        {
            var outcome = command.VmId is not null && agent.Driver is QemuMicroVmDriver qemu
                ? await qemu.ResyncAsync(command, Progress, ct)
                : await VolumeWorkers.Of(agent, logger).ResyncAsync(command, Progress, ct);
            logger.LogInformation("Host {Host} filled the replica of volume {VolumeId} on {Target}: {Bytes} bytes in {Seconds:F1} s, guest paused {Pause:F1} ms",
                agent.Name, command.VolumeId, command.Target.HostName, outcome.Bytes, outcome.Seconds, outcome.PauseMs);
            await reports.PublishAsync(new ReplicaResynced(agent.Id, command.VolumeId, command.Target.HostId, outcome.Bytes, outcome.Seconds, outcome.PauseMs));
        }
        catch (Exception e) when (e is not HostPoweredOffException && !ct.IsCancellationRequested)
        {
            // As with a format: every failure is reported, or the volume would wait for this copy forever.
            logger.LogWarning(e, "Host {Host} could not fill the replica of volume {VolumeId} on {Target}: {Reason}", agent.Name, command.VolumeId,
                command.Target.HostName, e.Message);
            await reports.PublishAsync(new VolumeWorkFailedReport(agent.Id, command.VolumeId, command.Target.HostId, VolumeWorkers.Reason(e)));
        }
    }
}

/// <summary>
/// Scrubs a volume: every replica read through a voting quorum, in the QEMU of the microVM that has it attached (beside its
/// guest), or with a storage daemon of this host when no guest has it. Reports the replicas the majority outvoted.
/// </summary>
public static class ScrubVolumeReplicasHandler
{
    /// <summary>A scrub reads the whole volume, as a resync copies it: as long as the volume is big (see ResyncVolumeReplicaHandler).</summary>
    [Wolverine.Attributes.MessageTimeout(24 * 3600)]
    public static async Task Handle(ScrubVolumeReplicas command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        var reports = Reports.For(runtime, context);
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var findings = command.VmId is not null && agent.Driver is QemuMicroVmDriver qemu
                ? await qemu.ScrubAsync(command, ct)
                : await VolumeWorkers.Of(agent, logger).ScrubAsync(command, ct);
            var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
            logger.LogInformation("Host {Host} scrubbed volume {VolumeId}: {Bytes} bytes of {Replicas} replicas in {Seconds:F1} s, {Bad} outvoted{Unresolved}",
                agent.Name, command.VolumeId, findings.Bytes, command.Replicas.Count, seconds, findings.Bad.Count, findings.Unresolved is null ? "" : "; " + findings.Unresolved);
            await reports.PublishAsync(new VolumeScrubReport(agent.Id, command.VolumeId, findings.Bytes, seconds, findings.Bad, findings.Unresolved));
        }
        catch (Exception e) when (e is not HostPoweredOffException && !ct.IsCancellationRequested)
        {
            // As with a format: every failure is reported, or the volume's work would wait for this scrub forever.
            logger.LogWarning(e, "Host {Host} could not scrub volume {VolumeId}: {Reason}", agent.Name, command.VolumeId, e.Message);
            await reports.PublishAsync(new VolumeWorkFailedReport(agent.Id, command.VolumeId, null, VolumeWorkers.Reason(e)));
        }
    }
}

internal static class VolumeWorkers
{
    public static VolumeWorker Of(HostAgent agent, ILogger logger) => agent.Driver is QemuMicroVmDriver qemu
        ? new VolumeWorker(qemu.Options, qemu.HostDirectory, logger, qemu.Network)
        : throw new InvalidOperationException($"host {agent.Name} runs no real hypervisor: it cannot do volume work");

    /// <summary>Why volume work failed, as the volume's events say it: a failure the work expects in its own words, another with its type.</summary>
    public static string Reason(Exception e) =>
        e is ResyncException or QmpException or IOException or InvalidOperationException or TimeoutException ? e.Message : $"{e.GetType().Name}: {e.Message}";
}
