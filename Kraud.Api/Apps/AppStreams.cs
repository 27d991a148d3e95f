using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Ingresses;
using Marten;
using Wolverine;

namespace Kraud.Api.Apps;

/// <param name="Secrets">Launch and upgrade only: the secret values, stored as documents beside the events, never in them.</param>
public sealed record AppRequest(AppCommand Command, Principal By, int? ExpectedRevision = null, IReadOnlyDictionary<string, string>? Secrets = null) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}

public static class AppRequestHandler
{
    public static async Task Handle(AppRequest request, IDocumentSession session, IMessageContext context, AppParts parts)
    {
        request.By.RequireWriter();
        await AppStreams.ExecuteAsync(session, context, parts, request.Command, request.By, request.ExpectedRevision, request.Secrets);
    }
}

/// <summary>
/// The one path of every app command (the tenant's and the rollout saga's): decide on the app's stream, append, and do what
/// follows in the same transaction: start a rollout, remove an upgrade's old pods, or every pod of a deleted app.
/// </summary>
public static class AppStreams
{
    public static readonly Principal Rollouts = Principal.System("app-rollout");

    /// <summary>Read only (the rollout saga's checks): commands go through <see cref="ExecuteAsync"/>.</summary>
    public static async Task<(AppInstance State, int Version)> LoadAsync(IQuerySession session, Guid appId)
    {
        var (state, version) = await Streams.LoadAsync<AppInstance>(session, appId);
        return (state, version);
    }

    public static async Task<AppInstance> ExecuteAsync(IDocumentSession session, IMessageContext context, AppParts parts, AppCommand command, Principal by,
        int? expectedRevision = null, IReadOnlyDictionary<string, string>? secrets = null)
    {
        var loaded = await Streams.FetchForWritingAsync<AppInstance>(session, command.AppId);
        var (before, version) = loaded;
        if (before.Exists && by.TenantId is { } tenant && before.TenantId != tenant) throw DomainException.NotFound("App", command.AppId);
        if (expectedRevision is { } expected && expected != version)
            throw DomainException.Conflict($"App {command.AppId} is at revision {version}, not {expected}: reload it and try again.");
        var events = AppDecider.Decide(command, before);
        if (events.Count == 0) return before;
        var after = events.Aggregate(before, (s, e) => s.Evolve(e));
        var stamp = AuditStamp.For(context, by, after.TenantId, command.GetType().Name, scope: command.AppId.ToString());
        Streams.Append(loaded, events, stamp);

        var claim = NameClaim.For("app", after.TenantId.ToString(), after.Namespace, after.Name);
        foreach (var e in events)
        {
            switch (e)
            {
                case AppLaunchRequested or AppUpgradeRequested:
                    if (e is AppLaunchRequested) session.Insert(new NameClaim { Id = claim, OwnerId = after.Id });
                    foreach (var (field, value) in secrets ?? new Dictionary<string, string>())
                        session.Store(new AppSecretValue { Id = AppSecretValue.IdFor(after.Id, field), TenantId = after.TenantId, AppId = after.Id, Value = value });
                    await context.PublishAsync(new StartAppRollout(AppRolloutSaga.IdFor(after.Id, after.Rollout!.Number), after.Id, after.Rollout.Number));
                    break;
                case AppRolloutSucceeded when before.Rollout!.IsUpgrade:
                    // The ingress goes over to the new pods before the old ones stop; one the new version no longer has goes.
                    if (after.Ingress is { } ingress)
                        await parts.Ingresses.SetRoutesAsync(session, context, new SetIngressRoutes(ingress.IngressId,
                            AppRolloutSteps.RoutesOf(before.Rollout).Select(r => Route(r.Route, r.PodId)).ToList(), Rollouts, command.At, after.Id));
                    else if (before.Ingress is { } dropped) await DeleteIngressAsync(session, context, parts, after.Id, dropped.IngressId, command.At);
                    await DeletePodsAsync(session, context, parts, after, before.Parts.Select(p => p.PodId), command.At);
                    break;
                case AppDeletionRequested:
                    session.Delete<NameClaim>(claim);
                    session.DeleteWhere<AppSecretValue>(s => s.AppId == after.Id);
                    await DeletePodsAsync(session, context, parts, after, after.Parts.Select(p => p.PodId), command.At);
                    // Volumes go once no pod mounts them (AppReleaseHandler): deleting an attached volume is refused.
                    if (after.Ingress is { } own) await DeleteIngressAsync(session, context, parts, after.Id, own.IngressId, command.At);
                    if (after.Volumes.Count > 0) await context.PublishAsync(new ReleaseAppVolumes(after.Id));
                    break;
            }
        }
        return after;
    }

    public static IngressRoute Route(AppIngressPart route, Guid podId) => new(route.Host, route.Path, podId, route.Port);

    /// <summary>Deletes an ingress of the app; one never created or deleted already is fine.</summary>
    public static async Task DeleteIngressAsync(IDocumentSession session, IMessageContext context, AppParts parts, Guid appId, Guid ingressId, DateTimeOffset at)
    {
        var view = await session.LoadAsync<IngressView>(ingressId);
        if (view is null || view.Deleted) return;
        await parts.Ingresses.DeleteAsync(session, context, new DeleteIngress(ingressId, Rollouts, at, appId));
    }

    /// <summary>
    /// Deletes those of the app's volumes no pod mounts any more (a pod lets go of its volumes once it stopped); says whether
    /// every one of them is deleted or being deleted now.
    /// </summary>
    public static async Task<bool> DeleteVolumesAsync(IDocumentSession session, IMessageContext context, AppParts parts, Guid appId, IEnumerable<AppVolumePart> volumes,
        DateTimeOffset at)
    {
        var done = true;
        foreach (var part in volumes)
        {
            var loaded = await Streams.FetchForWritingAsync<Volume>(session, part.VolumeId);
            if (loaded.State is not { Exists: true, Deleting: false, Deleted: false } volume) continue;
            if (volume.Attachments.Count > 0)
            {
                done = false;
                continue;
            }
            await parts.Volumes.ExecuteAsync(session, context, new DeleteVolume(part.VolumeId, Rollouts, at, appId), Rollouts, loaded: loaded);
        }
        return done;
    }

    /// <summary>Deletes the app's own pods; one already gone or on its way out is fine (rollbacks and deletions may overlap).</summary>
    public static async Task DeletePodsAsync(IDocumentSession session, IMessageContext context, AppParts parts, AppInstance app, IEnumerable<Guid> podIds, DateTimeOffset at)
    {
        foreach (var podId in podIds)
        {
            var (pod, _) = await Streams.LoadAsync<Pod>(session, podId);
            if (!pod.Exists || pod.Deleting) continue;
            await parts.Pods.RequestAsync(session, context, new DeletePod(podId, Rollouts, at, app.Id), Rollouts);
        }
    }
}

/// <summary>A deleted app's volumes, deleted once no pod mounts them: sent when the app is deleted, then again every second until then.</summary>
public sealed record ReleaseAppVolumes(Guid AppId);

public static class AppReleaseHandler
{
    public static readonly TimeSpan Retry = TimeSpan.FromSeconds(1);

    public static async Task Handle(ReleaseAppVolumes release, IDocumentSession session, IMessageContext context, TimeProvider time,
        AppParts parts)
    {
        var (app, _) = await AppStreams.LoadAsync(session, release.AppId);
        if (app is not { Exists: true, Phase: AppPhase.Deleting, Released: false }) return;
        var now = time.GetUtcNow();
        // A rollout still running removes what it created itself; the app's own volumes wait until it is done.
        if (app.Rollout is null && await AppStreams.DeleteVolumesAsync(session, context, parts, app.Id, app.Volumes, now))
            await AppStreams.ExecuteAsync(session, context, parts, new ReleaseApp(app.Id, now), AppStreams.Rollouts);
        else await context.ScheduleAsync(release, Retry);
    }
}

/// <summary>The resources an app is made of, driven in the app's own transactions through their slices' contracts.</summary>
public sealed record AppParts(IPods Pods, IVolumes Volumes, IIngresses Ingresses);
