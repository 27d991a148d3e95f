using Kraud.Api.Common;
using Kraud.Api.Health;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Domain.Scheduling;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Pods;

/// <summary>
/// The scheduler. Requests arrive in batches on one sequential queue: the fleet's free capacity comes from the copy the
/// scheduler keeps in memory (<see cref="PlacementCapacity"/>: hosts locked, only those changed by others read again), each
/// pod is placed against the capacity the previous ones left (all its unplaced replicas or none), and the whole batch
/// commits in one transaction. One at a time, so two placements never take the same free slot; and only on the node
/// that holds the scheduler (<see cref="SchedulerFence"/>), so that two nodes never place at once.
/// </summary>
public static class SchedulePodHandler
{
    private static readonly Principal Scheduler = Principal.System("scheduler");

    public static async Task Handle(SchedulePod[] batch, IDocumentSession session, IMessageContext context, TimeProvider time, FleetOptions options,
        IPods pods, IVolumes volumes, IAddresses addresses, Telemetry.KraudMetrics metrics, PlacementCapacities capacity, IWolverineRuntime runtime,
        NodeIdentity node)
    {
        var requests = batch.SelectMany(m => m.Each()).DistinctBy(m => m.PodId).ToList();
        if (await SchedulerFence.HoldAsync(session, context, runtime, node.Name, SchedulerQueue.Name, requests) is not { } mark) return;
        requests.AddRange(await GatherPendingAsync(session, requests.Select(r => r.PodId).ToHashSet()));
        var streams = await Streams.FetchManyForWritingAsync<Pod>(session, requests.Select(r => r.PodId));
        // Most messages of a busy moment name pods an earlier batch gathered and placed: nothing to lock, nothing to commit.
        if (!streams.Values.Any(s => s.State.Exists && s.State.Unplaced.Count > 0)) return;
        var fleet = await capacity.Compute.LockAsync(session);
        // What the boots will read (pull secrets, volumes, secrets), in one round trip for the batch instead of one per pod.
        await pods.ReadAheadForBootsAsync(session, streams.Values.Select(s => s.State).Where(p => p.Exists && p.Unplaced.Count > 0).ToList());
        // One boot command per host for the whole batch, sent when every pod of it is decided.
        var hostCommands = new HostCommandBatch();
        foreach (var request in requests)
        {
            // The pod's own trace goes on here (and with the BootMicroVm sent inside it, to the host runtime).
            using var activity = request.TraceParent is { } parent
                ? Telemetry.KraudMetrics.Tracing.StartActivity("kraud.scheduler.place", System.Diagnostics.ActivityKind.Internal, parent)
                : null;
            activity?.SetTag("kraud.pod.id", request.PodId.ToString());
            activity?.SetTag("kraud.scheduler.batch_size", batch.Length);
            var loaded = streams[request.PodId];
            var pod = loaded.State;
            if (!pod.Exists || pod.Unplaced.Count == 0) continue;
            var now = time.GetUtcNow();
            var affinity = await volumes.AffinityAsync(session, pod);
            // A volume still being set up: the pod stays PENDING; the volume asks for it again once it is usable.
            if (affinity is VolumeAffinity.Wait) continue;
            // Replicas that ran before lost their host: placing them again is what the N+2 reserve is kept for.
            var recovery = pod.Unplaced.All(pod.Generations.ContainsKey);
            var placement = new PlacementRequest(pod.Id, pod.Unplaced, pod.Spec.Cpu, pod.Spec.MemoryMiB, (affinity as VolumeAffinity.Go)?.Zone,
                pod.Spec.Confidential, pod.Live.Select(i => i.HostId).ToHashSet(), EnforceNPlus2: options.EnforceNPlus2 && !recovery);
            var free = await addresses.FreeAddressesAsync(session, context, pod.TenantId, pod.Spec.Namespace, Scheduler, now);
            var command = (free < pod.Unplaced.Count
                    ? new Unschedulable($"namespace {pod.Spec.Namespace} has {free} free VPC addresses, {pod.Unplaced.Count} needed")
                    : affinity is VolumeAffinity.Refuse refused ? new Unschedulable(refused.Reason) : Placement.Place(placement, fleet.Values)) switch
            {
                Placed placed => new ApplyPlacement(pod.Id, placed.Hosts.Select(p => new ReplicaPlacement(p.Replica, p.Host.Id, p.Host.Name)).ToList(), null, now),
                Unschedulable u => new ApplyPlacement(pod.Id, [], u.Reason, now),
                var other => throw new InvalidOperationException($"Unknown placement result {other}"),
            };
            var after = await pods.ExecuteAsync(session, context, command, Scheduler, correlationId: request.CorrelationId, loaded: loaded,
                hostCommands: hostCommands);
            if (command.Placements.Count > 0)
            {
                metrics.Placements.Add(command.Placements.Count);
                if (request.At is { } asked) metrics.PlacementLatency.Record((now - asked).TotalSeconds);
            }
            else activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, command.UnschedulableReason);

            // The next pod of the batch sees this one's reservations.
            foreach (var vm in after.Instances.Where(i => pod.Instance(i.VmId) is null))
                fleet[vm.HostId] = fleet[vm.HostId].Evolve(new MicroVmPlaced(vm.HostId, vm.VmId, pod.Id, pod.TenantId, pod.Spec.Cpu, pod.Spec.MemoryMiB, now));
        }
        SchedulerFence.Mark(session, mark);
        await hostCommands.SendAsync(context);
    }

    /// <summary>
    /// Up to <see cref="Gathered"/> more pods that wait for their first placement, besides those this batch's messages
    /// name. The exclusive queue hands the scheduler one or two messages at a time, and behind it the placements of a burst
    /// took a transaction each; gathered, one batch places what is pending and the messages that follow find their pods
    /// placed. Each pod keeps its own message, so what is not gathered (a pod past the limit, one that waits for a volume,
    /// one whose view is not yet committed) is still placed when its message comes. The placement's events carry the
    /// correlation id of the pod's create, read from its first event, as they would from the pod's own message.
    /// </summary>
    private static async Task<IReadOnlyList<SchedulePod>> GatherPendingAsync(IDocumentSession session, HashSet<Guid> asked)
    {
        var pending = await session.Query<PodView>().Where(p => p.State == PodState.Pending)
            .OrderBy(p => p.CreatedTicks).Select(p => p.Id).Take(Gathered).ToListAsync();
        var more = pending.Where(id => !asked.Contains(id)).ToArray();
        return more.Length == 0 ? [] : await AsRequestedAsync(session, more);
    }

    /// <summary>Requests for these pods with the correlation id of each one's create, read from its first event.</summary>
    internal static async Task<IReadOnlyList<SchedulePod>> AsRequestedAsync(IQuerySession session, IReadOnlyCollection<Guid> pods)
    {
        var firsts = await session.Events.QueryAllRawEvents().Where(e => e.StreamId.IsOneOf(pods.ToArray()) && e.Version == 1)
            .Select(e => new { e.StreamId, e.CorrelationId }).ToListAsync();
        return firsts.Select(e => new SchedulePod(e.StreamId, e.CorrelationId)).ToList();
    }

    /// <summary>At most this many pods gathered into one batch (see <see cref="GatherPendingAsync"/>).</summary>
    public const int Gathered = 500;
}
