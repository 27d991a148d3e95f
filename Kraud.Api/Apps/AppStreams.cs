using Kraud.Api.Common;
using Kraud.Api.Pods;
using Kraud.Domain.Access;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Apps;

/// <param name="Secrets">Launch and upgrade only: the secret values, stored as documents beside the events, never in them.</param>
public sealed record AppRequest(AppCommand Command, Principal By, int? ExpectedRevision = null, IReadOnlyDictionary<string, string>? Secrets = null);

public static class AppRequestHandler
{
    public static async Task Handle(AppRequest request, IDocumentSession session, IMessageContext context)
    {
        if (request.By.Role == Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens are read-only.");
        await AppStreams.ExecuteAsync(session, context, request.Command, request.By, request.ExpectedRevision, request.Secrets);
    }
}

/// <summary>
/// The one path of every app command (the tenant's and the rollout saga's): decide on the app's stream, append, and do what
/// follows in the same transaction: start a rollout, remove an upgrade's old pods, or every pod of a deleted app.
/// </summary>
public static class AppStreams
{
    public static readonly Principal Rollouts = Principal.System("app-rollout");

    public static async Task<(AppInstance State, int Version)> LoadAsync(IQuerySession session, Guid appId)
    {
        var stream = await session.Events.FetchStreamAsync(appId);
        return (Fold.Events<AppInstance>(stream.Select(e => e.Data)), stream.Count);
    }

    public static async Task<AppInstance> ExecuteAsync(IDocumentSession session, IMessageContext context, AppCommand command, Principal by,
        int? expectedRevision = null, IReadOnlyDictionary<string, string>? secrets = null)
    {
        var (before, version) = await LoadAsync(session, command.AppId);
        if (before.Exists && by.TenantId is { } tenant && before.TenantId != tenant) throw DomainException.NotFound("App", command.AppId);
        if (expectedRevision is { } expected && expected != version)
            throw DomainException.Conflict($"App {command.AppId} is at revision {version}, not {expected}: reload it and try again.");
        var events = AppDecider.Decide(command, before);
        if (events.Count == 0) return before;
        var after = events.Aggregate(before, (s, e) => s.Evolve(e));
        var stamp = AuditStamp.For(context, by, after.TenantId, command.GetType().Name, scope: command.AppId.ToString());
        (version == 0 ? session.Events.StartStream(command.AppId, events) : session.Events.Append(command.AppId, version + events.Count, events)).Stamp(stamp);

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
                    await DeletePodsAsync(session, context, after, before.Parts.Select(p => p.PodId), command.At);
                    break;
                case AppDeletionRequested:
                    session.Delete<NameClaim>(claim);
                    session.DeleteWhere<AppSecretValue>(s => s.AppId == after.Id);
                    await DeletePodsAsync(session, context, after, after.Parts.Select(p => p.PodId), command.At);
                    break;
            }
        }
        return after;
    }

    /// <summary>Deletes the app's own pods; one already gone or on its way out is fine (rollbacks and deletions may overlap).</summary>
    public static async Task DeletePodsAsync(IDocumentSession session, IMessageContext context, AppInstance app, IEnumerable<Guid> podIds, DateTimeOffset at)
    {
        foreach (var podId in podIds)
        {
            var (pod, _) = await PodStreams.LoadAsync(session, podId);
            if (!pod.Exists || pod.Deleting) continue;
            await PodRequestHandler.ExecuteAsync(session, context, new DeletePod(podId, Rollouts, at, app.Id), Rollouts);
        }
    }
}
