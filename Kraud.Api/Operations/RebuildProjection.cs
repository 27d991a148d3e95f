using System.Collections.Concurrent;
using GraphQL;
using Kraud.Api.Configuration;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Npgsql;
using MartenCoordinator = Marten.Events.Daemon.Coordination.IProjectionCoordinator;

namespace Kraud.Api.Operations;

public sealed record RebuildJob(string Name, string State, int EventsProcessed);

/// <summary>
/// Rebuilds a projection from the events while the API keeps serving: the job runs in the background and reports how
/// far it got. One rebuild per projection at a time.
/// </summary>
public sealed class RebuildJobs(MartenCoordinator coordinator, KraudDatabase database, ILogger<RebuildJobs> logger)
{
    /// <summary>The projections Kraud registers (see MartenSetup): the async audit chain and the inline read models.</summary>
    public static readonly IReadOnlyList<string> Names = [AuditChainProjection.Name, "PodView", "HostView", "TenantView", "ApiTokenView"];

    private readonly ConcurrentDictionary<string, (Task Task, DateTimeOffset Started)> _jobs = new();

    public RebuildJob Start(string name)
    {
        Require(name);
        var job = _jobs.AddOrUpdate(name, Run, (n, existing) => existing.Task.IsCompleted ? Run(n) : existing);
        return Describe(name, job.Task);
    }

    public async Task<RebuildJob?> StatusAsync(string name, CancellationToken ct)
    {
        Require(name);
        if (!_jobs.TryGetValue(name, out var job)) return null;
        var state = Describe(name, job.Task);
        return state with { EventsProcessed = await ProgressAsync(name, job.Task.IsCompletedSuccessfully, ct) };
    }

    private (Task, DateTimeOffset) Run(string name) => (Task.Run(async () =>
    {
        logger.LogWarning("Rebuilding projection {Projection}", name);
        var daemon = coordinator.DaemonForMainDatabase();
        await daemon.RebuildProjectionAsync(name, TimeSpan.FromMinutes(30), CancellationToken.None);
        // A rebuilt async projection is left stopped at the end of the log: it has to go on with what comes next.
        if (name == AuditChainProjection.Name) await daemon.StartAgentAsync($"{name}:All", CancellationToken.None);
        logger.LogWarning("Rebuilt projection {Projection}", name);
    }), DateTimeOffset.UtcNow);

    private static RebuildJob Describe(string name, Task task) => new(name, task.Status switch
    {
        TaskStatus.RanToCompletion => "COMPLETED",
        TaskStatus.Faulted => $"FAILED: {task.Exception?.GetBaseException().Message}",
        TaskStatus.Canceled => "CANCELED",
        _ => "RUNNING",
    }, 0);

    /// <summary>
    /// Async projections record their position; inline ones do not, and a completed rebuild of one went through the
    /// whole log, so its position is the log's end.
    /// </summary>
    private async Task<int> ProgressAsync(string name, bool completed, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(
            $"""
             select coalesce((select max(last_seq_id) from {MartenSetup.Schema}.mt_event_progression where name like @n),
                             case when @completed then (select max(seq_id) from {MartenSetup.Schema}.mt_events) end, 0)
             """, connection);
        cmd.Parameters.AddWithValue("completed", completed);
        cmd.Parameters.AddWithValue("n", name + ":%");
        return (int)Math.Min(int.MaxValue, Convert.ToInt64(await cmd.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture));
    }

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
            var jobs = ctx.Service<RebuildJobs>();
            var name = ctx.GetArgument<string>("name");
            jobs.Start(name);
            return (await jobs.StatusAsync(name, ctx.CancellationToken))!;
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
