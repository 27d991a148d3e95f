using System.Collections.Concurrent;
using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Kraud.Projections.Common;
using Kraud.Projections.Replay;
using Marten;
using Npgsql;
using Wolverine.Runtime;
using MartenCoordinator = Marten.Events.Daemon.Coordination.IProjectionCoordinator;

namespace Kraud.Api.Replay;

/// <summary>A rebuild as the API shows it: how far it got (events of the log up to its high-water mark when it began), how fast, and how long it still needs.</summary>
public sealed record RebuildJob(string Name, string State, int EventsProcessed, int EventsTotal, double EventsPerSecond, double? EtaSeconds,
    DateTime StartedAt, double ElapsedSeconds);

/// <summary>
/// Rebuilds a projection from the events while the API keeps serving: the job runs in the background and reports how
/// far it got. One rebuild per projection at a time. The audit chain and the platform checkpoints are rebuilt by bulk
/// readers of their own (AuditChainRebuild, PlatformCheckpointProjection) up to the daemon's high-water mark, and the
/// daemon's agent goes on from there; the inline read models go through Marten's daemon.
/// </summary>
public sealed class RebuildJobs(MartenCoordinator coordinator, IDocumentStore store, KraudDatabase database, PlatformCheckpointer checkpointer,
    AuditChainProjection auditChain, ArchiveBoundary boundary, IWolverineRuntime runtime, IClusterNodes cluster, ILogger<RebuildJobs> logger)
{
    /// <summary>The projections Kraud registers (see MartenSetup) and the platform projection's checkpoints.</summary>
    public static readonly IReadOnlyList<string> Names =
        [AuditChainProjection.Name, PlatformCheckpointProjection.Name, "PodView", "HostView", "TenantView", "ApiTokenView"];

    private readonly ConcurrentDictionary<string, Job> _jobs = new();

    private sealed record Job(Task Task, RebuildProgress Progress, DateTimeOffset Started);

    public async Task<RebuildJob> StartAsync(string name, CancellationToken ct)
    {
        Require(name);
        await RequireProjectionsHereAsync(name, ct);
        return Describe(name, _jobs.AddOrUpdate(name, Run, (n, existing) => existing.Task.IsCompleted ? Run(n) : existing));
    }

    public async Task<RebuildJob?> StatusAsync(string name, CancellationToken ct)
    {
        Require(name);
        if (_jobs.TryGetValue(name, out var job)) return Describe(name, job);
        await RequireProjectionsHereAsync(name, ct);
        return null;
    }

    /// <summary>
    /// A rebuild holds the daemon's agents in this process, so it runs on the node Wolverine gave the async projections
    /// to; asked of another node, it names that node instead of rewriting what a live agent elsewhere is writing. While
    /// nobody holds them (a handover, or the pause of a rebuild that just ended), it waits for them to settle.
    /// </summary>
    private async Task RequireProjectionsHereAsync(string name, CancellationToken ct)
    {
        if (name == PlatformCheckpointProjection.Name) return; // built by every node's checkpointer, no agent
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!runtime.Agents.AllRunningAgentUris().Any(u => u.Scheme == "event-subscriptions"))
        {
            if (await cluster.ProjectionsHolderAsync(ct) is { } holder)
            {
                // Assigned here and (re)starting: the rebuild waits for this node's daemon (DaemonHereAsync).
                if (holder == cluster.Self) return;
                throw new DomainException(ErrorCode.Precondition,
                    $"Projection {name} is rebuilt where the async projections run: node {holder} (see /health); ask that node.");
            }
            if (waited.Elapsed > DaemonWait)
                throw new DomainException(ErrorCode.Precondition, $"No node runs the async projections now; try rebuilding {name} again shortly.");
            await Task.Delay(200, ct);
        }
    }

    private Job Run(string name)
    {
        var progress = new RebuildProgress();
        return new Job(Task.Run(async () =>
        {
            logger.LogWarning("Rebuilding projection {Projection}", name);
            using var stop = new CancellationTokenSource();
            var reporting = ReportAsync(name, progress, stop.Token);
            try
            {
                await (name switch
                {
                    AuditChainProjection.Name => RebuildAuditChainAsync(progress),
                    PlatformCheckpointProjection.Name => checkpointer.RebuildAsync(progress, CancellationToken.None),
                    _ => RebuildThroughDaemonAsync(name, progress),
                });
            }
            finally
            {
                progress.Finish();
                await stop.CancelAsync();
                await reporting;
            }
            logger.LogWarning("Rebuilt projection {Projection}: {Progress} in {Seconds:F1} s ({Stages})", name, progress, progress.Elapsed.TotalSeconds,
                string.Join(", ", progress.Stages));
        }), progress, DateTimeOffset.UtcNow);
    }

    /// <summary>
    /// The daemon's agent is held, the chain is rewritten up to the high-water mark, and the agent is then stopped through
    /// the daemon and started again, so it reads the position the rebuild left and goes on from there. Should the bulk
    /// rebuild fail, the agent starts from event 0 instead: slow, but the chain ends up whole and exact.
    /// </summary>
    private async Task RebuildAuditChainAsync(RebuildProgress progress)
    {
        var shard = $"{AuditChainProjection.Name}:All";
        // The pause lets a batch the agent is writing finish; once the daemon runs again, the agent waits at the hold
        // (held during the pause, it would keep the pause waiting for it).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await coordinator.PauseAsync();
        var held = auditChain.Hold();
        try
        {
            var upTo = await checkpointer.HighWaterMarkAsync(CancellationToken.None);
            await coordinator.ResumeAsync();
            progress.Stage("pause the daemon", clock.Elapsed);
            var rebuild = new AuditChainRebuild(store, database.ConnectionString, KraudDatabase.Schema);
            var start = await boundary.ChainStartAsync(CancellationToken.None);
            try
            {
                // After a removal of archived events the chain is rebuilt from the archive's head: its entries up to
                // there stay (verifyAuditChain walks them), and the events before it are not all in the log any more.
                await rebuild.RunAsync(upTo, start, progress, CancellationToken.None);
            }
            catch
            {
                await rebuild.ResetAsync(start, CancellationToken.None);
                throw;
            }
        }
        finally
        {
            held.Dispose();
            clock.Restart();
            await RestartAgentAsync(shard);
            progress.Stage("restart the agent", clock.Elapsed);
        }
    }

    /// <summary>
    /// A batch the agent was held in fails on the position the rebuild wrote (ProgressionProgressOutOfOrderException).
    /// JasperFx marks the agent Stopped for that failure and keeps it in the daemon's list, and the coordinator only
    /// restarts agents that are missing or Paused: left alone, the shard stays where the rebuild left it for good (a
    /// fresh-clone CI run saw it stuck for 60 s). Stopping it removes it from the list (after its held batch has run and
    /// failed), and the start reads the position again. A start the coordinator makes meanwhile is the same start.
    /// </summary>
    private async Task RestartAgentAsync(string shard)
    {
        var daemon = await DaemonHereAsync();
        await daemon.StopAgentAsync(shard);
        // The held batch has run (and failed) by now: the head it kept in memory is not the one the rebuild wrote.
        auditChain.Forget();
        await daemon.StartAgentAsync(shard, CancellationToken.None);
        if (daemon.StatusFor(shard) != JasperFx.AgentStatus.Running)
            throw new InvalidOperationException($"The daemon's {shard} agent did not start again after the rebuild ({daemon.StatusFor(shard)}).");
    }

    /// <summary>
    /// This node's daemon. Under Wolverine's distribution a node has one only while it runs projection agents, and the
    /// coordinator's pause and resume around the chain rebuild hand them to the leader, which gives them out again in its
    /// next assignment round; a fast rebuild finished before that (a fresh-clone CI run), and asking then throws.
    /// </summary>
    private async Task<JasperFx.Events.Daemon.IProjectionDaemon> DaemonHereAsync()
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return coordinator.DaemonForMainDatabase();
            }
            catch (Exception e) when (e.Message.Contains("not running a projection daemon", StringComparison.Ordinal) && waited.Elapsed < DaemonWait)
            {
                await Task.Delay(200);
            }
        }
    }

    private static readonly TimeSpan DaemonWait = TimeSpan.FromSeconds(30);

    private async Task RebuildThroughDaemonAsync(string name, RebuildProgress progress)
    {
        var total = await checkpointer.HighWaterMarkAsync(CancellationToken.None);
        progress.Begin(total);
        var shard = new JasperFx.Events.Projections.ShardName(name, JasperFx.Events.Projections.ShardName.All, 1);
        var before = await store.Advanced.ProjectionProgressFor(shard, token: CancellationToken.None);
        using var rebuilt = new CancellationTokenSource();
        var watching = FollowShardAsync(store, shard, before, progress, TimeSpan.FromSeconds(1), rebuilt.Token);
        try
        {
            await (await DaemonHereAsync()).RebuildProjectionAsync(name, TimeSpan.FromMinutes(30), CancellationToken.None);
        }
        finally
        {
            await rebuilt.CancelAsync();
            await watching;
        }
        // It went through the whole log.
        progress.Advance(Math.Max(0, total - progress.Processed));
    }

    /// <summary>
    /// Marten's rebuild of an inline projection tells no progress on the way, but it moves its shard's position as its
    /// pages commit: that position is how far it got (a PodView rebuild of 10 million events showed 0 for a quarter of an
    /// hour). A position still at the one from before the rebuild is the old one, not yet reset by the rebuild.
    /// </summary>
    internal static async Task FollowShardAsync(IDocumentStore store, JasperFx.Events.Projections.ShardName shard, long before, RebuildProgress progress,
        TimeSpan every, CancellationToken ct)
    {
        var reset = false;
        try
        {
            while (true)
            {
                await Task.Delay(every, ct);
                var position = await store.Advanced.ProjectionProgressFor(shard, token: ct);
                reset |= position != before;
                if (reset && position > progress.Processed) progress.Advance(position - progress.Processed);
            }
        }
        catch (OperationCanceledException)
        {
            // the rebuild ended
        }
    }

    /// <summary>The console shows a long rebuild's progress every few seconds.</summary>
    private async Task ReportAsync(string name, RebuildProgress progress, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(5), ct);
                logger.LogWarning("Rebuilding projection {Projection}: {Progress}", name, progress);
            }
        }
        catch (OperationCanceledException)
        {
            // the rebuild ended
        }
    }

    private static RebuildJob Describe(string name, Job job)
    {
        var p = job.Progress;
        var state = job.Task.Status switch
        {
            TaskStatus.RanToCompletion => "COMPLETED",
            TaskStatus.Faulted => $"FAILED: {job.Task.Exception?.GetBaseException().Message}",
            TaskStatus.Canceled => "CANCELED",
            _ => "RUNNING",
        };
        return new RebuildJob(name, state, Clamp(p.Processed), Clamp(p.Total), Math.Round(p.EventsPerSecond, 1),
            state == "RUNNING" && p.Eta is { } eta ? Math.Round(eta.TotalSeconds, 1) : state == "COMPLETED" ? 0 : null,
            job.Started.UtcDateTime, Math.Round(p.Elapsed.TotalSeconds, 2));
    }

    private static int Clamp(long n) => (int)Math.Min(int.MaxValue, n);

    private static void Require(string name)
    {
        if (!Names.Contains(name))
            throw DomainException.Validation($"'{name}' is not a projection Kraud has; it has {string.Join(", ", Names)}.");
    }
}

public static class RebuildProjectionFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("rebuildProjection", async ctx =>
        {
            RequireOperator(ctx);
            return await ctx.Service<RebuildJobs>().StartAsync(ctx.GetArgument<string>("name"), ctx.CancellationToken);
        });
        fields.Query("rebuildJob", async ctx =>
        {
            RequireOperator(ctx);
            return await ctx.Service<RebuildJobs>().StatusAsync(ctx.GetArgument<string>("name"), ctx.CancellationToken);
        });
    }

    private static void RequireOperator(IResolveFieldContext ctx)
    {
        if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can rebuild projections.");
    }
}
