using Kraud.Api.Common;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Apps;
using Kraud.Projections.Ingresses;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Apps;

public sealed record StartAppRollout(Guid SagaId, Guid AppId, int Rollout);

public sealed record CreateAppRolloutPart(Guid SagaId, int Index);

/// <param name="Tick">Which look this is: the saga takes only the one it scheduled last, so a redelivered look starts no second chain.</param>
public sealed record CheckAppRollout(Guid SagaId, int Tick);

public sealed class AppRolloutOptions
{
    /// <summary>A rollout whose parts are not all RUNNING after this long is rolled back.</summary>
    public int TimeoutSeconds { get; set; } = 300;
}

/// <summary>
/// One launch or upgrade of an app, as a Wolverine saga: it takes the rollout's steps (<see cref="AppRolloutSteps"/>) one
/// transaction at a time (stop old pods that hold a BLOCK volume, create new volumes, pods, the ingress) through the same
/// handlers the tenant's own commands take, then waits (it looks every second, a durable scheduled message to itself) until every pod is
/// RUNNING, every volume HEALTHY and the ingress placed, and completes the rollout. If a step is refused, a part fails, a
/// volume cannot be placed, or the time is up, it rolls back: it deletes the pods and the ingress the rollout created,
/// waits until those pods stopped (they let go of their volumes then), deletes the volumes it created, boots the old pods
/// it had stopped again on their volumes, and only then fails the rollout with the reason naming the part.
/// </summary>
public sealed class AppRolloutSaga : Saga
{
    public Guid Id { get; set; }
    public Guid AppId { get; set; }
    public int Rollout { get; set; }
    public int Parts { get; set; }
    public int Created { get; set; }
    public DateTimeOffset Deadline { get; set; }
    public int TimeoutSeconds { get; set; }

    /// <summary>The tick of the next look the saga scheduled for itself (see <see cref="CheckAppRollout"/>).</summary>
    public int Checks { get; set; }

    /// <summary>How often a rollout looks at its parts: a nudge for a step that waits, and how soon it sees them all ready.</summary>
    public static readonly TimeSpan CheckEvery = TimeSpan.FromSeconds(1);

    /// <summary>Set once the rollout is rolling back: why.</summary>
    public string? Failure { get; set; }

    public static Guid IdFor(Guid appId, int rollout) => DeterministicId.From("app-rollout", appId, rollout);

    public static async Task<(AppRolloutSaga, CreateAppRolloutPart, DeliveryMessage<CheckAppRollout>)> Start(StartAppRollout start,
        IDocumentSession session, TimeProvider time, AppRolloutOptions options)
    {
        var (app, _) = await AppStreams.LoadAsync(session, start.AppId);
        var saga = new AppRolloutSaga
        {
            Id = start.SagaId, AppId = start.AppId, Rollout = start.Rollout, Parts = app.Rollout?.Number == start.Rollout ? AppRolloutSteps.Of(app).Count : 0,
            Deadline = time.GetUtcNow().AddSeconds(options.TimeoutSeconds), TimeoutSeconds = options.TimeoutSeconds,
        };
        return (saga, new CreateAppRolloutPart(saga.Id, 0), saga.NextCheck());
    }

    public async Task<object?> Handle(CreateAppRolloutPart step, IDocumentSession session, IMessageContext context, TimeProvider time,
        AppParts parts)
    {
        if (step.Index != Created || Failure is not null) return null; // a redelivered step, or one nudged twice
        var (app, _) = await AppStreams.LoadAsync(session, AppId);
        if (app.Rollout?.Number != Rollout)
        {
            MarkCompleted();
            return null;
        }
        if (app.Phase == AppPhase.Deleting) return await RollBackAsync(session, context, parts, app, "the app was deleted during the rollout", time);
        var steps = AppRolloutSteps.Of(app);
        if (Created >= steps.Count) return null;
        var now = time.GetUtcNow();
        try
        {
            switch (steps[Created])
            {
                case StopOldPod stop:
                    await AppStreams.DeletePodsAsync(session, context, parts, app, [stop.Pod.PodId], now);
                    break;
                case CreateAppVolume { Volume: var v }:
                    var name = AppPlan.VolumeName(app.Name, app.Id, v.Name);
                    // Checked here, not left to the commit: a refused commit would leave this step to retry forever instead of failing the rollout.
                    if (await session.LoadAsync<NameClaim>(NameClaim.For("volume", app.TenantId.ToString(), name)) is not null)
                        throw DomainException.Conflict($"a volume named {name} exists already");
                    // The app's zone field places its volumes as it places its pods (every pod of the rollout carries it).
                    await parts.Volumes.CreateAsync(session, context, new CreateVolume(v.VolumeId, app.TenantId, name,
                        Enum.Parse<VolumeClass>(v.Class, ignoreCase: true), v.SizeGiB, app.Rollout.Pods[0].Spec.Zone, AppStreams.Rollouts, now, app.Owner),
                        AppStreams.Rollouts);
                    break;
                case CreateAppPod { Pod: var part }:
                    // Stop-before-start: the old pod lets go of its BLOCK volume once it stopped; until then this step waits.
                    if (await HeldElsewhereAsync(session, part) is not null) return null;
                    if (await session.LoadAsync<NameClaim>(NameClaim.For("pod", app.TenantId.ToString(), part.Spec.Namespace, part.Spec.Name)) is not null)
                        throw DomainException.Conflict($"a pod named {part.Spec.Namespace}/{part.Spec.Name} exists already");
                    await parts.Pods.RequestAsync(session, context,
                        new CreatePod(part.PodId, app.TenantId, part.Spec, part.Replicas, AppStreams.Rollouts, now, app.Owner), AppStreams.Rollouts);
                    break;
                case CreateAppIngress { Ingress: var ingress, Routes: var routes }:
                    await parts.Ingresses.CreateAsync(session, context, new CreateIngress(ingress.IngressId, app.TenantId, ingress.Name, IngressKind.Managed,
                        routes.Select(r => AppStreams.Route(r.Route, r.PodId)).ToList(), null, null, null, [], false, 1, AppStreams.Rollouts, now, app.Owner));
                    break;
            }
        }
        catch (DomainException e)
        {
            // A refusal after some of the step's events were queued (a pod appended, then its volume refused the attachment)
            // must not commit half a part.
            session.EjectAllPendingChanges();
            return await RollBackAsync(session, context, parts, app, $"{steps[Created].Part}: {e.Message}", time);
        }
        Created++;
        return Created < Parts ? new CreateAppRolloutPart(Id, Created) : null;
    }

    /// <summary>A writable BLOCK volume the pod mounts that another pod still holds.</summary>
    private static async Task<Guid?> HeldElsewhereAsync(IQuerySession session, AppPodPart part)
    {
        foreach (var mount in part.Spec.Mounts.Where(m => m.Class == VolumeClass.Block))
        {
            var volume = (await Streams.LoadAsync<Volume>(session, mount.VolumeId)).State;
            if (volume.Attachments.Any(a => a.PodId != part.PodId)) return volume.Id;
        }
        return null;
    }

    private DeliveryMessage<CheckAppRollout> NextCheck() => new CheckAppRollout(Id, ++Checks).DelayedFor(CheckEvery);

    /// <summary>Each look schedules the next until the rollout is done: no loop scans the database for rollouts.</summary>
    public async Task<OutgoingMessages> Handle(CheckAppRollout check, IDocumentSession session, IMessageContext context, TimeProvider time, AppParts parts)
    {
        var messages = new OutgoingMessages();
        if (check.Tick != Checks) return messages;
        if (await CheckAsync(session, context, time, parts) is { } step) messages.Add(step);
        if (!IsCompleted()) messages.Add(NextCheck());
        return messages;
    }

    private async Task<object?> CheckAsync(IDocumentSession session, IMessageContext context, TimeProvider time, AppParts parts)
    {
        var (app, _) = await AppStreams.LoadAsync(session, AppId);
        if (app.Rollout?.Number != Rollout)
        {
            MarkCompleted();
            return null;
        }
        if (Failure is not null) return await FinishRollbackAsync(session, context, parts, app, time);
        if (app.Phase == AppPhase.Deleting) return await RollBackAsync(session, context, parts, app, "the app was deleted during the rollout", time);
        var now = time.GetUtcNow();
        if (Created < Parts)
        {
            if (now > Deadline)
                return await RollBackAsync(session, context, parts, app, $"{AppRolloutSteps.Of(app)[Created].Part}: not created within {TimeoutSeconds} s " +
                    $"(step {Created + 1} of {Parts})", time);
            // Nudges a step that waits (stop-before-start); a step already done ignores it.
            return new CreateAppRolloutPart(Id, Created);
        }
        var (state, reason) = await HealthAsync(session, app.Rollout);
        if (state == "RUNNING")
        {
            await AppStreams.ExecuteAsync(session, context, parts, new CompleteAppRollout(AppId, Rollout, now), AppStreams.Rollouts);
            MarkCompleted();
        }
        else if (state == "DEGRADED") return await RollBackAsync(session, context, parts, app, reason!, time);
        else if (now > Deadline) return await RollBackAsync(session, context, parts, app, $"not every part was ready within {TimeoutSeconds} s ({reason ?? "still starting"})", time);
        return null;
    }

    private static async Task<(string State, string? Reason)> HealthAsync(IQuerySession session, AppRollout rollout)
    {
        var volumes = (await session.LoadManyAsync<VolumeView>(rollout.VolumeParts.Select(v => v.VolumeId).ToArray())).ToDictionary(v => v.Id, v => v.Volume);
        var ingress = rollout.Ingress is { } i ? (await session.LoadAsync<IngressView>(i.IngressId))?.Ingress : null;
        var pods = (await session.LoadManyAsync<PodView>(rollout.Pods.Select(p => p.PodId).ToArray())).ToDictionary(p => p.Id, p => p.Pod);
        return AppHealth.Of(rollout.Pods, rollout.VolumeParts, rollout.Ingress, pods, volumes, ingress);
    }

    /// <summary>
    /// The start of a rollback: the app says so (with the reason), the rollout's pods and its new ingress are deleted now. What
    /// must wait until those pods stopped (their volumes, the old pods to boot again) is done by <see cref="FinishRollbackAsync"/>.
    /// </summary>
    private async Task<object?> RollBackAsync(IDocumentSession session, IMessageContext context, AppParts parts, AppInstance app, string reason, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var rollout = app.Rollout!;
        Failure = reason;
        if (rollout.Ingress is { Existing: false } ingress) await AppStreams.DeleteIngressAsync(session, context, parts, AppId, ingress.IngressId, now);
        await AppStreams.DeletePodsAsync(session, context, parts, app, rollout.Pods.Select(p => p.PodId), now);
        // With nothing to wait for (no volume created, no old pod stopped), the rollout fails in this transaction.
        if (rollout.VolumeParts.All(v => v.Existing) && rollout.StoppedFirst.Count == 0) await FailAsync(session, context, parts, now, null);
        else await AppStreams.ExecuteAsync(session, context, parts, new RollBackAppRollout(AppId, Rollout, reason, now), AppStreams.Rollouts);
        return null;
    }

    private async Task<object?> FinishRollbackAsync(IDocumentSession session, IMessageContext context, AppParts parts, AppInstance app, TimeProvider time)
    {
        var rollout = app.Rollout!;
        var now = time.GetUtcNow();
        var stopped = app.Parts.Where(p => rollout.StoppedFirst.Contains(p.Service)).ToList();
        var pods = (await session.LoadManyAsync<PodView>(rollout.Pods.Concat(stopped).Select(p => p.PodId).ToArray())).ToDictionary(p => p.Id, p => p.Pod);
        if (pods.Values.Any(p => p.Exists && p.Deleting && p.State != PodState.Stopped)) return null;
        if (!await AppStreams.DeleteVolumesAsync(session, context, parts, AppId, rollout.VolumeParts.Where(v => !v.Existing), now)) return null;

        // Old pods the upgrade stopped boot again (new pods of their spec, on the same volumes), unless the app is being deleted.
        var restored = new List<AppPodPart>();
        if (app.Phase != AppPhase.Deleting)
            foreach (var old in stopped.Where(p => pods.GetValueOrDefault(p.PodId) is { Deleting: true }))
            {
                var again = old with { PodId = DeterministicId.From("app-pod-restored", AppId, Rollout, old.Service) };
                await parts.Pods.RequestAsync(session, context,
                    new CreatePod(again.PodId, app.TenantId, again.Spec, again.Replicas, AppStreams.Rollouts, now, app.Owner), AppStreams.Rollouts);
                restored.Add(again);
            }
        await FailAsync(session, context, parts, now, restored);
        return null;
    }

    private async Task FailAsync(IDocumentSession session, IMessageContext context, AppParts parts, DateTimeOffset now, IReadOnlyList<AppPodPart>? restored)
    {
        await AppStreams.ExecuteAsync(session, context, parts, new FailAppRollout(AppId, Rollout, Failure!, now, restored is { Count: > 0 } ? restored : null),
            AppStreams.Rollouts);
        MarkCompleted();
    }

    public static void NotFound(CheckAppRollout check) { }

    public static void NotFound(CreateAppRolloutPart step) { }
}
