using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>
/// The one path every pod command takes: fetch the stream for writing, check the caller may see it and the version it expects,
/// decide, append, and turn the change into host work (reserve or free capacity, boot or stop microVMs, schedule).
/// Host commands leave through the outbox, so they are sent only if the events commit. What a pod needs of its volumes,
/// its addresses, its secrets and its firewall comes through the other slices' contracts.
/// </summary>
public sealed class PodStreams(IVolumes volumes, IAddresses addresses, IEnumerable<IPodEnvironment> environments, IBootFirewall firewall, IPodImages images)
    : IPods
{
    /// <summary>The pod's stream for a decision appended in this session (Marten's FetchForWriting).</summary>
    public static Task<Loaded<Pod>> FetchForWritingAsync(IDocumentSession session, Guid podId, CancellationToken ct = default) =>
        Streams.FetchForWritingAsync<Pod>(session, podId, ct);

    /// <summary>
    /// A pod command with what goes with it kept in step: the name claim taken on create and given back once the pod
    /// stopped, the volumes a new pod mounts attached and its namespace's VPC overlay made, in the same transaction.
    /// </summary>
    public async Task<DecidedPod> RequestAsync(IDocumentSession session, IMessageContext context, PodCommand command, Principal by,
        int? expectedVersion = null)
    {
        var loaded = await FetchForWritingAsync(session, command.PodId);
        if (command is CreatePod create)
        {
            // A retry of a create that committed (its answer was lost): the decider answers the pod as it is and appends
            // nothing, and its name claim, volumes and overlay are there already.
            if (loaded.State.Exists)
            {
                var existing = await ExecuteAsync(session, context, command, by, expectedVersion, loaded: loaded);
                // The first attempt's ask to the scheduler may have been lost with its answer; asking again is harmless
                // (the scheduler skips a pod with nothing left to place).
                if (existing.Unplaced.Count > 0)
                    await context.PublishAsync(new SchedulePod(existing.Id, context.CorrelationId, System.Diagnostics.Activity.Current?.Id, command.At));
                return new DecidedPod(existing, VersionAfter(loaded));
            }
            command = await volumes.ResolveMountsAsync(session, create);
        }
        var pod = await ExecuteAsync(session, context, command, by, expectedVersion, loaded: loaded);
        if (command is CreatePod created)
        {
            await volumes.AttachNewPodAsync(session, context, pod, by, command.At);
            // The namespace's overlay exists before the scheduler leases the pod's first address from it (after this commit).
            await addresses.EnsureNamespaceAsync(session, context, created.TenantId, created.Spec.Namespace, by, created.At);
            session.Insert(new NameClaim { Id = NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name), OwnerId = pod.Id });
        }
        // Gone, not merely stopped: a pod stopped with StopPod (docker stop) keeps its name and can start again.
        if (pod.Gone)
            session.Delete<NameClaim>(NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name));
        return new DecidedPod(pod, VersionAfter(loaded));
    }

    public async Task ReadAheadForBootsAsync(IQuerySession session, IReadOnlyCollection<Pod> pods)
    {
        var ahead = new ReadAhead(session);
        images.ReadAheadForBoots(ahead, pods);
        volumes.ReadAheadForBoots(ahead, pods);
        foreach (var environment in environments) environment.ReadAheadForBoots(ahead, pods);
        await ahead.ExecuteAsync();
    }

    public async Task ReadAheadForCreateAsync(IDocumentSession session, CreatePod create)
    {
        var ahead = new ReadAhead(session);
        Streams.ReadAheadForWriting<Pod>(ahead, create.PodId);
        addresses.ReadAheadForCreate(ahead, create.TenantId);
        images.ReadAheadForCreate(ahead, session, create);
        await ahead.ExecuteAsync();
    }

    /// <summary>The stream's version once this session commits: the version it was fetched at plus what was appended to it since.</summary>
    private static int VersionAfter(Loaded<Pod> loaded) => loaded.Version + (loaded.Stream?.Events.Count ?? 0);

    /// <summary>
    /// The booting microVM's environment: each slice that puts references into a pod's environment (an app's generated
    /// secrets, a Kubernetes Secret) resolves its own, one after the other.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, string>> EnvironmentAsync(IQuerySession session, Pod pod)
    {
        var env = pod.Spec.Env;
        foreach (var environment in environments) env = await environment.ResolveAsync(session, pod with { Spec = pod.Spec with { Env = env } });
        return env;
    }

    public async Task<Pod> ExecuteAsync(IDocumentSession session, IMessageContext context, PodCommand command, Principal by,
        int? expectedVersion = null, string? correlationId = null, Loaded<Pod>? loaded = null, HostCommandBatch? hostCommands = null)
    {
        loaded ??= await FetchForWritingAsync(session, command.PodId);
        var (before, version) = loaded;
        Streams.Guard("Pod", command.PodId, before.Exists, before.TenantId, version, by, expectedVersion);

        var events = PodDecider.Decide(command, before);
        if (events.Count == 0) return before;
        var after = events.Aggregate(before, (state, e) => state.Evolve(e));
        var addressed = await addresses.DecideAsync(session, context, before, after, by, command.At);
        if (addressed.Count > 0)
        {
            events = [.. events, .. addressed];
            after = addressed.Aggregate(after, (state, e) => state.Evolve(e));
        }

        var stamp = AuditStamp.For(context, by, after.TenantId, CommandName(command), correlationId, scope: command.PodId.ToString());
        Streams.Append(loaded, events, stamp);

        await ApplyHostEffectsAsync(session, context, command, before, after, stamp, hostCommands);
        await ReplaceFailedReplicasHandler.ScheduleAsync(context, before, after);
        await RetryPodPlacementHandler.ScheduleAsync(context, before, after);
        // A GFS volume's file server (a pod the volume owns) serving or not decides whether the volume's other pods can start.
        if (after.Owner is { Kind: ResourceOwner.Volume } volumeOwner && before.State != after.State)
            await context.PublishAsync(new FileServerChanged(volumeOwner.Id));
        if (after.Gone && !before.Gone)
        {
            await volumes.ReleaseAsync(session, context, after, by, command.At);
            images.Release(session, after);
        }
        return after;
    }

    private async Task ApplyHostEffectsAsync(IDocumentSession session, IMessageContext context, PodCommand command, Pod before, Pod after,
        AuditStamp stamp, HostCommandBatch? hostCommands)
    {
        // Messages sent now carry this pod's correlation id, also when the handler decides for several pods.
        context.CorrelationId = stamp.CorrelationId;
        var reactions = PodReactions.HostCommands(before, after);
        var released = PodReactions.ReleasedVms(before, after);
        await Streams.LockAsync(session, reactions.OfType<PodReactions.Boot>().Where(b => b.IsNew).Select(b => b.Instance.HostId)
            .Concat(released.Select(vm => vm.HostId)));
        var image = reactions.Any(r => r is PodReactions.Boot) ? await images.ForBootAsync(session, after) : null;
        foreach (var reaction in reactions)
        {
            switch (reaction)
            {
                case PodReactions.Boot(var vm, var isNew):
                    if (isNew)
                        session.Events.Append(vm.HostId, new MicroVmPlaced(vm.HostId, vm.VmId, after.Id, after.TenantId, after.Spec.Cpu, after.Spec.MemoryMiB, command.At))
                            .Stamp(stamp);
                    // Each microVM gets its own access to block exports, granted beside its boot command (see IVolumes).
                    var boot = new BootMicroVm(vm.HostId,
                        Spec(after, vm, await volumes.ForBootAsync(session, context, after, vm), await EnvironmentAsync(session, after)) with { Oci = image });
                    if (hostCommands is null) await context.EndpointFor(HostQueues.Uri(vm.HostName)).SendAsync(boot);
                    else hostCommands.Boot(vm.HostName, boot, stamp.CorrelationId, System.Diagnostics.Activity.Current?.Id);
                    if (isNew) await firewall.SendForBootAsync(session, context, after.Id, vm.HostId, vm.HostName, vm.VmId);
                    break;
                case PodReactions.Stop(var vm):
                    await context.EndpointFor(HostQueues.Uri(vm.HostName)).SendAsync(new StopMicroVm(vm.HostId, vm.VmId, after.Id));
                    break;
            }
        }
        foreach (var vm in released)
        {
            session.Events.Append(vm.HostId, new MicroVmReleased(vm.HostId, vm.VmId, Why(after, vm), command.At)).Stamp(stamp);
            await volumes.RevokeAccessAsync(session, context, after, vm);
        }
        if (released.Length > 0)
        {
            // Whether the host is empty now is decided after this commits, on the host's stream (see FinishDrain).
            var hosts = await session.LoadManyAsync<HostView>(released.Select(vm => vm.HostId).Distinct());
            foreach (var host in hosts.Where(h => h.State == HostState.Draining))
                await context.PublishAsync(new FinishDrain(host.Id, command.At));
        }

        // In memory (gathered per node into one durable request); a PENDING pod whose ask was lost is found by SchedulerRepair.
        if (command is not ApplyPlacement && after.Unplaced.Count > 0)
            await context.PublishAsync(new PodAwaitsPlacement(new SchedulePod(after.Id, stamp.CorrelationId, System.Diagnostics.Activity.Current?.Id, command.At)));
    }

    private static string Why(Pod after, PodInstance vm) =>
        after.Instance(vm.VmId) is { Phase: VmPhase.Failed, Reason: var reason } ? $"failed: {reason}" : "stopped";

    private static MicroVmSpec Spec(Pod pod, PodInstance vm, IReadOnlyList<VolumeAttachmentSpec> mounts, IReadOnlyDictionary<string, string> env) =>
        new(vm.VmId, pod.Id, pod.TenantId, vm.Replica, vm.Generation, pod.Spec.Image, pod.Spec.Command, env, pod.Spec.Cpu, pod.Spec.MemoryMiB,
            pod.Spec.EphemeralGiB, pod.Spec.Confidential, mounts.Count == 0 ? null : mounts, vm.Ip6, vm.Ip4);

    private static string CommandName(PodCommand command) => command switch
    {
        RecordVmReport r => "Record" + r.Report.GetType().Name,
        _ => command.GetType().Name,
    };
}
