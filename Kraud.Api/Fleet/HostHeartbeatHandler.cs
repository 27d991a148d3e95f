using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Fleet;

/// <summary>
/// Reconciliation: a heartbeat says what a host runs; the host's reservations say what it should run. A VM that should
/// run and is missing is booted again; one that runs but should not is stopped; a failed host that speaks again recovers.
/// </summary>
public static class HostHeartbeatHandler
{
    private static readonly Principal Reconciler = Principal.System("reconciler");

    public static async Task Handle(HostHeartbeat heartbeat, IDocumentSession session, IMessageContext context, TimeProvider time, IPods pods,
        IVolumes volumes, FleetOptions fleet, Telemetry.KraudMetrics metrics)
    {
        metrics.Heartbeats.Add(1, new KeyValuePair<string, object?>("host", heartbeat.HostId.ToString()));
        var view = await session.LoadAsync<HostView>(heartbeat.HostId);
        if (view is null) return; // not registered yet: its announcement is on the way
        var liveness = await session.LoadAsync<HostLiveness>(heartbeat.HostId) ?? new HostLiveness { Id = heartbeat.HostId };
        if (heartbeat.SentAt <= liveness.LastSentAt) return; // an older heartbeat overtaken by a newer one
        var now = time.GetUtcNow();

        if (view.Host.State == HostState.Failed)
            await HostStreams.DecideAsync(session, context, view.Id, Reconciler, nameof(MarkHostAlive), host => HostDecider.Decide(new MarkHostAlive(view.Id, now), host));

        var running = heartbeat.RunningVms.ToHashSet();
        var reserved = view.Host.Vms;
        var grace = TimeSpan.FromMilliseconds(fleet.HeartbeatIntervalMs * HostLiveness.StopGrace);
        liveness.Unknown = HostLiveness.Count(liveness.Unknown,
            HostLiveness.Strays(running.Where(vm => !reserved.ContainsKey(vm)), heartbeat.SentAt, liveness.StopsSent, grace));
        liveness.StopsSent = liveness.StopsSent.Where(s => running.Contains(s.Key)).ToDictionary(s => s.Key, s => s.Value);
        // Only VMs the host left out can be missing; the pods are read for those alone (usually none). A heartbeat sent
        // before the VM was recorded RUNNING is no evidence: heartbeats and boot reports travel on different queues, and under
        // load (or after a node's death, its messages recovered late) a boot report overtook two older heartbeats, and a
        // VM that ran all along was taken for vanished and booted again.
        var absent = reserved.Values.Where(vm => !running.Contains(vm.VmId)).ToList();
        var views = await LoadPodsAsync(session, absent.Select(v => v.PodId));
        liveness.Missing = HostLiveness.Count(liveness.Missing, absent
            .Where(vm => views.GetValueOrDefault(vm.PodId)?.Pod.Instance(vm.VmId) is { Phase: VmPhase.Running, StartedAt: var started }
                         && (started is null || heartbeat.SentAt > started))
            .Select(vm => vm.VmId));

        var unknown = liveness.Unknown.Where(u => u.Value >= HostLiveness.Evidence).Select(u => u.Key).ToList();
        if (unknown.Count > 0) await Streams.LockAsync(session, [view.Id]);
        foreach (var vm in unknown)
        {
            session.Events.Append(view.Id, new UnknownMicroVmStopped(view.Id, vm, "no pod owns this microVM on this host", now))
                .Stamp(AuditStamp.For(context, Reconciler, null, "StopUnknownMicroVm", scope: vm.ToString()));
            await context.EndpointFor(HostQueues.Uri(view.Name)).SendAsync(new StopMicroVm(view.Id, vm, Guid.Empty));
            liveness.Unknown.Remove(vm);
            liveness.StopsSent[vm] = now;
        }
        foreach (var vm in liveness.Missing.Where(m => m.Value >= HostLiveness.Evidence).Select(m => m.Key).ToList())
        {
            await pods.ExecuteAsync(session, context, new RecordVmReport(reserved[vm].PodId, vm, view.Id, new VmMissing(), now), Reconciler);
            liveness.Missing.Remove(vm);
        }

        await ReconcileReplicasAsync(session, context, volumes, view, heartbeat, liveness, now);

        liveness.LastHeartbeat = now;
        liveness.LastSentAt = heartbeat.SentAt;
        liveness.RunningVms = [.. running];
        session.Store(liveness);
    }

    /// <summary>
    /// A storage host reports the replicas it holds; one that should be HEALTHY there and is left out twice in a row has
    /// failed (a dead disk), so its volume is DEGRADED and re-replicates.
    /// </summary>
    private static async Task ReconcileReplicasAsync(IDocumentSession session, IMessageContext context, IVolumes volumes, HostView view,
        HostHeartbeat heartbeat, HostLiveness liveness, DateTimeOffset now)
    {
        if (heartbeat.VolumeReplicas is null || view.Host.Replicas.IsEmpty) return;
        var held = heartbeat.VolumeReplicas.ToHashSet();
        var absent = view.Host.Replicas.Keys.Where(v => !held.Contains(v)).ToArray();
        var views = absent.Length == 0 ? [] : (await session.LoadManyAsync<VolumeView>(absent)).ToDictionary(v => v.Id);
        // A heartbeat sent before the replica was reported healthy says nothing about it (queues reorder and lag).
        liveness.MissingReplicas = HostLiveness.Count(liveness.MissingReplicas,
            absent.Where(v => views.GetValueOrDefault(v)?.Volume.Replica(view.Id) is { Phase: ReplicaPhase.Healthy } r && r.Since < heartbeat.SentAt));
        foreach (var volume in liveness.MissingReplicas.Where(m => m.Value >= HostLiveness.Evidence).Select(m => m.Key).ToList())
        {
            await volumes.ExecuteAsync(session, context,
                new RecordReplicaReport(volume, view.Id, new ReplicaFailed($"storage host {view.Name} no longer reports its replica"), now), Reconciler);
            liveness.MissingReplicas.Remove(volume);
        }
    }

    private static async Task<Dictionary<Guid, PodView>> LoadPodsAsync(IQuerySession session, IEnumerable<Guid> podIds)
    {
        var ids = podIds.Distinct().ToArray();
        return ids.Length == 0 ? [] : (await session.LoadManyAsync<PodView>(ids)).ToDictionary(p => p.Id);
    }
}
