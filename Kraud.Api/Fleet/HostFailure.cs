using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Agents;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Fleet;

/// <summary>
/// Declares a silent host FAILED and moves its work: each of its microVMs is lost, ordinary pods get their replica
/// placed again elsewhere (a new generation, fresh ephemeral disk), confidential pods fail as the product table says.
/// </summary>
public static class MarkHostFailedHandler
{
    private static readonly Principal Detector = Principal.System("failure-detector");

    public static async Task Handle(MarkHostFailed command, IDocumentSession session, IMessageContext context, IPods pods, IVolumes volumes)
    {
        if (await HostStreams.DecideAsync(session, context, command.HostId, Detector, nameof(MarkHostFailed), host => HostDecider.Decide(command, host))
            is not { } change) return;

        var reason = ((HostFailed)change.Events[0]).Reason;
        foreach (var vm in change.Before.Vms.Values.OrderBy(v => v.PodId))
            await pods.ExecuteAsync(session, context, new RecordVmReport(vm.PodId, vm.VmId, command.HostId, new VmHostFailed($"host failed: {reason}"), command.At),
                Detector);
        // A storage host's replicas are lost with it: their volumes are DEGRADED (or worse) and re-replicate elsewhere.
        foreach (var volumeId in change.Before.Replicas.Keys.Order())
            await volumes.ExecuteAsync(session, context,
                new RecordReplicaReport(volumeId, command.HostId, new ReplicaHostFailed($"storage host failed: {reason}"), command.At), Detector);
    }
}

/// <summary>Watches heartbeats: a READY, CORDONED or DRAINING host silent for longer than the window (see <see cref="HeartbeatSilence"/>) is marked FAILED.</summary>
public sealed class HostFailureDetector(IDocumentStore store, HostLeases leases, IWolverineRuntime runtime, FleetOptions fleet, TimeProvider time,
    ILogger<HostFailureDetector> logger) : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromMilliseconds(Math.Clamp(fleet.HeartbeatIntervalMs / 2, 100, 1000));
    protected override string FailureMessage => "Failure detection round failed";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var hosts = await session.Query<HostView>().ToListAsync(ct);
        var (renewed, databaseNow) = await leases.ReadAsync(ct);
        var lease = renewed.ToDictionary(l => l.HostId, l => l.RenewedAt);
        // A host that never renewed its lease is judged from when it registered.
        var heard = hosts.ToDictionary(h => h.Id, h => new HeartbeatSilence.Heard(h.Id, lease.TryGetValue(h.Id, out var at) ? at : h.Host.RegisteredAt));
        var judged = hosts.Where(h => h.State != HostState.Failed).Select(h => heard[h.Id]);
        foreach (var silent in HeartbeatSilence.Find(heard.Values, judged, databaseNow, TimeSpan.FromSeconds(fleet.HeartbeatTimeoutSeconds)))
        {
            var last = heard[silent.HostId].LastRenewed;
            var missed = (int)(silent.For.TotalMilliseconds / fleet.HeartbeatIntervalMs);
            logger.LogWarning("Host {Host} missed {Missed} heartbeats (last {Last:O}): marking it FAILED", hosts.First(h => h.Id == silent.HostId).Name, missed, last);
            await new MessageBus(runtime).InvokeAsync(new MarkHostFailed(silent.HostId, last, missed, Time.GetUtcNow()), ct);
        }
    }
}
