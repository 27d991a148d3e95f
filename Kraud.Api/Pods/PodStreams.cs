using Kraud.Api.Common;
using Kraud.Api.Volumes;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Pods;

/// <summary>
/// Asks the scheduler to place whatever replicas of the pod have no host. It carries the request's correlation id,
/// since the scheduler handles these in batches whose envelope belongs to no single request.
/// </summary>
/// <param name="TraceParent">The asking trace (W3C traceparent): the scheduler handles requests in batches, whose one
/// envelope cannot carry every request's trace, so each request carries its own and the placement continues it.</param>
/// <param name="At">When the pod asked for hosts: the placement latency is measured from here.</param>
public sealed record SchedulePod(Guid PodId, string? CorrelationId, string? TraceParent = null, DateTimeOffset? At = null);

/// <summary>
/// The one path every pod command takes: load the stream, check the caller may see it and the version it expects,
/// decide, append, and turn the change into host work (reserve or free capacity, boot or stop microVMs, schedule).
/// Host commands leave through the outbox, so they are sent only if the events commit.
/// </summary>
public static class PodStreams
{
    public static Task<Loaded<Pod>> LoadAsync(IQuerySession session, Guid podId, CancellationToken ct = default) =>
        Streams.LoadAsync<Pod>(session, podId, ct);

    /// <param name="loaded">The pod as the caller already read it in this session (the scheduler does), so it is not read twice.</param>
    public static async Task<Pod> ExecuteAsync(IDocumentSession session, IMessageContext context, PodCommand command, Principal by,
        int? expectedVersion = null, string? correlationId = null, Loaded<Pod>? loaded = null)
    {
        var (before, version) = loaded ?? await LoadAsync(session, command.PodId);
        Streams.Guard("Pod", command.PodId, before.Exists, before.TenantId, version, by, expectedVersion);

        var events = PodDecider.Decide(command, before);
        if (events.Count == 0) return before;
        var after = events.Aggregate(before, (state, e) => state.Evolve(e));
        var addressed = await Network.PodAddresses.DecideAsync(session, context, before, after, by, command.At);
        if (addressed.Count > 0)
        {
            events = [.. events, .. addressed];
            after = addressed.Aggregate(after, (state, e) => state.Evolve(e));
        }

        var stamp = AuditStamp.For(context, by, after.TenantId, CommandName(command), correlationId, scope: command.PodId.ToString());
        Streams.Append(session, command.PodId, version, events, stamp);

        await ApplyHostEffectsAsync(session, context, command, before, after, stamp);
        if (after.State == PodState.Stopped && before.State != PodState.Stopped)
            await VolumeAttachments.ReleaseAsync(session, context, after, by, command.At);
        return after;
    }

    private static async Task ApplyHostEffectsAsync(IDocumentSession session, IMessageContext context, PodCommand command, Pod before, Pod after,
        AuditStamp stamp)
    {
        // Messages sent now carry this pod's correlation id, also when the handler decides for several pods.
        context.CorrelationId = stamp.CorrelationId;
        var reactions = PodReactions.HostCommands(before, after);
        var released = PodReactions.ReleasedVms(before, after);
        await Streams.LockAsync(session, reactions.OfType<PodReactions.Boot>().Where(b => b.IsNew).Select(b => b.Instance.HostId)
            .Concat(released.Select(vm => vm.HostId)));
        var volumes = reactions.Any(r => r is PodReactions.Boot) ? await VolumeMounts.ForBootAsync(session, after) : [];
        foreach (var reaction in reactions)
        {
            switch (reaction)
            {
                case PodReactions.Boot(var vm, var isNew):
                    if (isNew)
                        session.Events.Append(vm.HostId, new MicroVmPlaced(vm.HostId, vm.VmId, after.Id, after.TenantId, after.Spec.Cpu, after.Spec.MemoryMiB, command.At))
                            .Stamp(stamp);
                    await context.EndpointFor(HostUri(vm.HostName)).SendAsync(new BootMicroVm(vm.HostId,
                        Spec(after, vm, volumes, await KubernetesApi.KubeSecretReferences.ResolveAsync(session, context, after.TenantId,
                            await Apps.AppSecrets.ResolveAsync(session, after)))));
                    if (isNew) await Ingresses.DirectFirewall.SendForBootAsync(session, context, after.Id, vm.HostId, vm.HostName, vm.VmId);
                    break;
                case PodReactions.Stop(var vm):
                    await context.EndpointFor(HostUri(vm.HostName)).SendAsync(new StopMicroVm(vm.HostId, vm.VmId, after.Id));
                    break;
            }
        }
        foreach (var vm in released)
            session.Events.Append(vm.HostId, new MicroVmReleased(vm.HostId, vm.VmId, Why(after, vm), command.At)).Stamp(stamp);
        if (released.Length > 0)
        {
            // Whether the host is empty now is decided after this commits, on the host's stream (see FinishDrain).
            var hosts = await session.LoadManyAsync<HostView>(released.Select(vm => vm.HostId).Distinct());
            foreach (var host in hosts.Where(h => h.State == HostState.Draining))
                await context.PublishAsync(new FinishDrain(host.Id, command.At));
        }

        if (command is not ApplyPlacement && after.Unplaced.Count > 0)
            await context.PublishAsync(new SchedulePod(after.Id, stamp.CorrelationId, System.Diagnostics.Activity.Current?.Id, command.At));
    }

    private static string Why(Pod after, PodInstance vm) =>
        after.Instance(vm.VmId) is { Phase: VmPhase.Failed, Reason: var reason } ? $"failed: {reason}" : "stopped";

    public static Uri HostUri(string hostName) => new($"postgresql://{Host.QueueName(hostName)}");

    private static MicroVmSpec Spec(Pod pod, PodInstance vm, IReadOnlyList<VolumeAttachmentSpec> volumes, IReadOnlyDictionary<string, string> env) =>
        new(vm.VmId, pod.Id, pod.TenantId, vm.Replica, vm.Generation, pod.Spec.Image, pod.Spec.Command, env, pod.Spec.Cpu, pod.Spec.MemoryMiB,
            pod.Spec.EphemeralGiB, pod.Spec.Confidential, volumes.Count == 0 ? null : volumes, vm.Ip6, vm.Ip4);

    private static string CommandName(PodCommand command) => command switch
    {
        RecordVmReport r => "Record" + r.Report.GetType().Name,
        _ => command.GetType().Name,
    };
}
