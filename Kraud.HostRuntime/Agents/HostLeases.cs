using Kraud.HostRuntime.Configuration;
using Npgsql;

namespace Kraud.HostRuntime.Agents;

/// <summary>
/// Host leases: each heartbeat, every host runtime renews its host's row of one small table, straight in the control
/// plane's database and stamped with the database's clock; the failure detector reads them. Liveness thus never waits
/// behind the message queues (a burst of reports, a busy control plane) and never compares the clocks of different
/// machines, while the heartbeat messages still carry what each host runs, for reconciliation. Kubernetes moved node
/// heartbeats to Lease objects for the same reasons.
/// </summary>
public sealed class HostLeases(string connectionString) : IAsyncDisposable
{
    /// <summary>Beside the queue tables: the one schema host runtimes and control plane both write.</summary>
    public const string Table = QueueTransport.Schema + ".host_leases";

    private readonly NpgsqlDataSource _source = NpgsqlDataSource.Create(connectionString);
    private volatile bool _created;

    public sealed record Lease(Guid HostId, DateTimeOffset RenewedAt);

    public async Task RenewAsync(IReadOnlyCollection<Guid> hosts, CancellationToken ct)
    {
        if (hosts.Count == 0) return;
        await EnsureTableAsync(ct);
        await using var command = _source.CreateCommand(
            $"insert into {Table} (host_id, renewed_at) select unnest(@hosts), now() on conflict (host_id) do update set renewed_at = excluded.renewed_at");
        command.Parameters.AddWithValue("hosts", hosts.ToArray());
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Every lease, and the database's clock now (the clock the leases were stamped with).</summary>
    public async Task<(IReadOnlyList<Lease> Leases, DateTimeOffset Now)> ReadAsync(CancellationToken ct)
    {
        await EnsureTableAsync(ct);
        await using var command = _source.CreateCommand($"select now(), l.host_id, l.renewed_at from (select 1) one left join {Table} l on true");
        await using var reader = await command.ExecuteReaderAsync(ct);
        var leases = new List<Lease>();
        var now = DateTimeOffset.MinValue;
        while (await reader.ReadAsync(ct))
        {
            now = reader.GetFieldValue<DateTimeOffset>(0);
            if (!reader.IsDBNull(1)) leases.Add(new Lease(reader.GetGuid(1), reader.GetFieldValue<DateTimeOffset>(2)));
        }
        return (leases, now);
    }

    private async Task EnsureTableAsync(CancellationToken ct)
    {
        if (_created) return;
        try
        {
            await using var command = _source.CreateCommand(
                $"create schema if not exists {QueueTransport.Schema}; " +
                $"create table if not exists {Table} (host_id uuid primary key, renewed_at timestamptz not null)");
            await command.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.DuplicateTable
                                              or PostgresErrorCodes.DuplicateSchema)
        {
            // Another process created it at the same moment.
        }
        _created = true;
    }

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}
