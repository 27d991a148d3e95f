using Kraud.Api.Common;
using Kraud.Api.Pods;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Apps;

public sealed record StartAppRollout(Guid SagaId, Guid AppId, int Rollout);

public sealed record CreateAppRolloutPart(Guid SagaId, int Index);

public sealed record CheckAppRollout(Guid SagaId);

public sealed class AppRolloutOptions
{
    /// <summary>A rollout whose parts are not all RUNNING after this long is rolled back.</summary>
    public int TimeoutSeconds { get; set; } = 300;
}

/// <summary>
/// One launch or upgrade of an app, as a Wolverine saga: it creates the rollout's parts one step (one transaction) at a
/// time, then waits (checked by <see cref="AppRolloutWatcher"/>) until every part is RUNNING, and completes the rollout;
/// if a part cannot be created, fails, cannot be placed, or the time is up, it removes every part it created and fails the
/// rollout with the reason. Today the parts are pods; a template's volumes and ingresses would be steps of their own (the
/// app decider refuses templates with them until createVolume and createIngress exist).
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

    public static Guid IdFor(Guid appId, int rollout) => DeterministicId.From("app-rollout", appId, rollout);

    public static async Task<(AppRolloutSaga, CreateAppRolloutPart)> Start(StartAppRollout start, IDocumentSession session, TimeProvider time,
        AppRolloutOptions options)
    {
        var (app, _) = await AppStreams.LoadAsync(session, start.AppId);
        var saga = new AppRolloutSaga
        {
            Id = start.SagaId, AppId = start.AppId, Rollout = start.Rollout, Parts = app.Rollout?.Number == start.Rollout ? app.Rollout.Pods.Count : 0,
            Deadline = time.GetUtcNow().AddSeconds(options.TimeoutSeconds), TimeoutSeconds = options.TimeoutSeconds,
        };
        return (saga, new CreateAppRolloutPart(saga.Id, 0));
    }

    public async Task<object?> Handle(CreateAppRolloutPart step, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        if (step.Index != Created) return null; // a redelivered step
        var (app, _) = await AppStreams.LoadAsync(session, AppId);
        if (app.Rollout?.Number != Rollout) return await AbandonAsync(session, context, app, time);
        if (Created >= Parts) return null;
        // Whoever lets AppFields.Capabilities admit volumes or ingresses must add their steps here: until then such a
        // rollout fails rather than run without the storage or the route its template asked for.
        if (app.Rollout.NeedsVolumesOrIngresses)
            return await FailAsync(session, context, app, "this rollout needs volumes or an ingress, and the saga has no steps that create them yet", time);
        var part = app.Rollout.Pods[step.Index];
        // Checked here, not left to the commit: a refused commit would leave this step to retry forever instead of failing the rollout.
        if (await session.LoadAsync<NameClaim>(NameClaim.For("pod", app.TenantId.ToString(), part.Spec.Namespace, part.Spec.Name)) is not null)
            return await FailAsync(session, context, app, $"service {part.Service}: a pod named {part.Spec.Namespace}/{part.Spec.Name} exists already", time);
        try
        {
            await PodRequestHandler.ExecuteAsync(session, context,
                new CreatePod(part.PodId, app.TenantId, part.Spec, part.Replicas, AppStreams.Rollouts, time.GetUtcNow(), app.Owner), AppStreams.Rollouts);
        }
        catch (DomainException e)
        {
            return await FailAsync(session, context, app, $"service {part.Service}: {e.Message}", time);
        }
        Created++;
        return Created < Parts ? new CreateAppRolloutPart(Id, Created) : null;
    }

    public async Task Handle(CheckAppRollout check, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var (app, _) = await AppStreams.LoadAsync(session, AppId);
        if (app.Rollout?.Number != Rollout || app.Phase == AppPhase.Deleting)
        {
            await AbandonAsync(session, context, app, time);
            return;
        }
        var now = time.GetUtcNow();
        if (Created < Parts)
        {
            if (now > Deadline) await FailAsync(session, context, app, $"only {Created} of {Parts} parts were created in time", time);
            return;
        }
        var parts = app.Rollout.Pods;
        var pods = (await session.LoadManyAsync<PodView>(parts.Select(p => p.PodId).ToArray())).ToDictionary(p => p.Id, p => p.Pod);
        var (state, reason) = PartsHealth.Of(parts.Select(p => new PartsHealth.Part($"service {p.Service}", pods.GetValueOrDefault(p.PodId))).ToList(), false);
        if (state == "RUNNING")
        {
            await AppStreams.ExecuteAsync(session, context, new CompleteAppRollout(AppId, Rollout, now), AppStreams.Rollouts);
            MarkCompleted();
        }
        else if (state == "DEGRADED") await FailAsync(session, context, app, reason!, time);
        else if (now > Deadline) await FailAsync(session, context, app, $"not every part was RUNNING within {TimeoutSeconds} s ({reason ?? "still starting"})", time);
    }

    /// <summary>Rollback: every part this rollout created is removed, then the rollout is failed with the reason.</summary>
    private async Task<object?> FailAsync(IDocumentSession session, IMessageContext context, AppInstance app, string reason, TimeProvider time)
    {
        var now = time.GetUtcNow();
        await AppStreams.DeletePodsAsync(session, context, app, app.Rollout!.Pods.Take(Created).Select(p => p.PodId), now);
        await AppStreams.ExecuteAsync(session, context, new FailAppRollout(AppId, Rollout, reason, now), AppStreams.Rollouts);
        MarkCompleted();
        return null;
    }

    /// <summary>The app was deleted while this rollout ran (or the rollout ended elsewhere): what it created goes too.</summary>
    private async Task<object?> AbandonAsync(IDocumentSession session, IMessageContext context, AppInstance app, TimeProvider time)
    {
        if (app.Rollout?.Number == Rollout)
        {
            var now = time.GetUtcNow();
            await AppStreams.DeletePodsAsync(session, context, app, app.Rollout.Pods.Take(Created).Select(p => p.PodId), now);
            await AppStreams.ExecuteAsync(session, context, new FailAppRollout(AppId, Rollout, "the app was deleted during the rollout", now), AppStreams.Rollouts);
        }
        MarkCompleted();
        return null;
    }

    public static void NotFound(CheckAppRollout check) { }

    public static void NotFound(CreateAppRolloutPart step) { }
}

/// <summary>Nudges every rollout in progress once a second to look at its parts (sagas have no timers of their own here).</summary>
public sealed class AppRolloutWatcher(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<AppRolloutWatcher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var session = store.QuerySession();
                var rollouts = await session.Query<AppRolloutSaga>().Select(s => s.Id).ToListAsync(stoppingToken);
                foreach (var id in rollouts) await new MessageBus(runtime).PublishAsync(new CheckAppRollout(id));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Checking app rollouts failed this round");
            }
        }
    }
}
