using Kraud.Api.Common;
using Kraud.HostRuntime.Logs;
using Npgsql;
using NpgsqlTypes;

namespace Kraud.Api.Logs;

/// <summary>
/// Reads the workload lines host runtimes shipped (<see cref="WorkloadLogTable"/>). Every read names the pod and its
/// tenant: a line is returned only if both match, so no query can reach another tenant's lines.
/// </summary>
public sealed class WorkloadLogReader(KraudDatabase database) : IWorkloadLogs, IAsyncDisposable
{
    public const int MaxLines = 10_000;

    private readonly NpgsqlDataSource _source = NpgsqlDataSource.Create(database.ConnectionString);
    private volatile bool _created;

    /// <param name="tail">The last this many lines (at most <see cref="MaxLines"/>); null: the first ones up to that cap.</param>
    /// <param name="afterId">Only lines stored after this one (the log stream's position).</param>
    public async Task<IReadOnlyList<LogLineDto>> ReadAsync(Guid tenant, Guid pod, int? replica, int? tail, DateTime? since, long afterId, CancellationToken ct)
    {
        await EnsureAsync(ct);
        var limit = Math.Clamp(tail ?? MaxLines, 0, MaxLines);
        if (limit == 0) return [];
        var newest = tail is not null;
        await using var command = _source.CreateCommand(
            $"select id, at, vm_id, replica, stream, line from {WorkloadLogTable.Name} " +
            "where pod_id = @pod and tenant_id = @tenant and id > @after and (@replica::int is null or replica = @replica) " +
            "and (@since::timestamptz is null or at >= @since) " +
            $"order by id {(newest ? "desc" : "asc")} limit @limit");
        command.Parameters.AddWithValue("pod", pod);
        command.Parameters.AddWithValue("tenant", tenant);
        command.Parameters.AddWithValue("after", afterId);
        command.Parameters.Add(new NpgsqlParameter("replica", NpgsqlDbType.Integer) { Value = (object?)replica ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("since", NpgsqlDbType.TimestampTz)
        { Value = since is { } s ? DateTime.SpecifyKind(s, DateTimeKind.Utc) : DBNull.Value });
        command.Parameters.AddWithValue("limit", limit);
        var lines = new List<LogLineDto>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            lines.Add(new LogLineDto(reader.GetInt64(0), DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc), reader.GetGuid(2), reader.GetInt32(3),
                reader.GetString(4), reader.GetString(5)));
        if (newest) lines.Reverse();
        return lines;
    }

    /// <summary>The position of the pod's newest line (0: none yet).</summary>
    public async Task<long> LastIdAsync(Guid tenant, Guid pod, CancellationToken ct)
    {
        await EnsureAsync(ct);
        await using var command = _source.CreateCommand($"select coalesce(max(id), 0) from {WorkloadLogTable.Name} where pod_id = @pod and tenant_id = @tenant");
        command.Parameters.AddWithValue("pod", pod);
        command.Parameters.AddWithValue("tenant", tenant);
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Lines older than the retention go (the host keeps its own files).</summary>
    public async Task<int> DeleteOlderThanAsync(TimeSpan age, CancellationToken ct)
    {
        await EnsureAsync(ct);
        await using var command = _source.CreateCommand($"delete from {WorkloadLogTable.Name} where at < now() - @age");
        command.Parameters.AddWithValue("age", age);
        return await command.ExecuteNonQueryAsync(ct);
    }

    private async Task EnsureAsync(CancellationToken ct)
    {
        if (_created) return;
        await WorkloadLogTable.EnsureAsync(_source, ct);
        _created = true;
    }

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}

/// <summary>Deletes workload lines older than Logs:RetentionHours (72) every minute.</summary>
public sealed class WorkloadLogRetention(WorkloadLogReader logs, IConfiguration configuration, TimeProvider time, ILogger<WorkloadLogRetention> logger)
    : Common.PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromMinutes(1);

    protected override string FailureMessage => "Workload log retention failed";

    protected override Task RoundAsync(CancellationToken ct) =>
        logs.DeleteOlderThanAsync(TimeSpan.FromHours(configuration.GetValue("Logs:RetentionHours", 72.0)), ct);
}
