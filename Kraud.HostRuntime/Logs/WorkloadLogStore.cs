using System.Threading.Channels;
using Kraud.HostRuntime.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Kraud.HostRuntime.Logs;

/// <summary>
/// The control plane's copy of workload logs: one table beside the queue tables (like the host leases), which host
/// runtimes insert into and the control plane reads for podLogs and the log stream. Lines carry their tenant, and every
/// read filters on it.
/// </summary>
public static class WorkloadLogTable
{
    public const string Name = QueueTransport.Schema + ".workload_logs";

    public const string Create =
        $"create schema if not exists {QueueTransport.Schema}; " +
        $"create table if not exists {Name} (id bigserial primary key, tenant_id uuid not null, pod_id uuid not null, vm_id uuid not null, " +
        "replica int not null, at timestamptz not null, stream text not null, line text not null); " +
        $"create index if not exists workload_logs_pod on {Name} (pod_id, id); " +
        $"create index if not exists workload_logs_vm on {Name} (vm_id, id); " +
        $"create index if not exists workload_logs_at on {Name} (at)";

    public static async Task EnsureAsync(NpgsqlDataSource source, CancellationToken ct)
    {
        try
        {
            await using var command = source.CreateCommand(Create);
            await command.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.DuplicateTable
                                              or PostgresErrorCodes.DuplicateSchema or PostgresErrorCodes.DuplicateObject)
        {
            // Another process created it at the same moment.
        }
    }
}

/// <summary>
/// Ships this host runtime's workload lines to <see cref="WorkloadLogTable"/> in batches (every 200 ms or 500 lines). The
/// host's own files stay the complete record: while the database cannot be reached, up to 20,000 lines wait here and
/// the oldest are dropped beyond that (with a warning). Each microVM keeps its last <see cref="MaxLinesPerMicroVm"/> lines.
/// </summary>
public sealed class WorkloadLogShipper : BackgroundService, IWorkloadLogSink
{
    public const int MaxLinesPerMicroVm = 10_000;
    private const int BatchSize = 500, Buffered = 20_000;

    private readonly Channel<WorkloadLogLine> _lines;
    private readonly NpgsqlDataSource _source;
    private readonly ILogger<WorkloadLogShipper> _logger;
    private readonly Dictionary<Guid, int> _sinceTrim = [];
    private long _dropped;

    // Lines enqueued, and lines inserted or dropped: a flush waits until every line enqueued before it is one or the other,
    // also those the shipping loop already took into a batch of its own.
    private long _enqueued, _settled;
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public WorkloadLogShipper(string connectionString, ILogger<WorkloadLogShipper> logger)
    {
        _source = NpgsqlDataSource.Create(connectionString);
        _logger = logger;
        _lines = Channel.CreateBounded<WorkloadLogLine>(
            new BoundedChannelOptions(Buffered) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true }, _ =>
            {
                Interlocked.Increment(ref _dropped);
                Settle(1);
            });
    }

    public void Enqueue(WorkloadLogLine line)
    {
        Interlocked.Increment(ref _enqueued);
        _lines.Writer.TryWrite(line);
    }

    private void Settle(int lines)
    {
        Interlocked.Add(ref _settled, lines);
        Interlocked.Exchange(ref _progress, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<WorkloadLogLine>(BatchSize);
        var created = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (batch.Count == 0 && !await _lines.Reader.WaitToReadAsync(stoppingToken)) return;
                using (var window = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
                {
                    window.CancelAfter(200);
                    try
                    {
                        while (batch.Count < BatchSize)
                        {
                            if (_lines.Reader.TryRead(out var line)) batch.Add(line);
                            else if (!await _lines.Reader.WaitToReadAsync(window.Token)) break;
                        }
                    }
                    catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested) { }
                }
                if (!created)
                {
                    await WorkloadLogTable.EnsureAsync(_source, stoppingToken);
                    created = true;
                }
                await InsertAsync(batch, stoppingToken);
                Settle(batch.Count);
                batch.Clear();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                _logger.LogWarning("Workload logs: {Count} lines wait, the control plane's database refused them: {Error}", batch.Count, e.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            if (Interlocked.Exchange(ref _dropped, 0) is var dropped and > 0)
                _logger.LogWarning("Workload logs: {Count} lines were dropped while the database was behind (the host's files keep them)", dropped);
        }
    }

    /// <summary>Returns once every line enqueued before the call is in the database (or was dropped); tests call it.</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        var target = Interlocked.Read(ref _enqueued);
        var batch = new List<WorkloadLogLine>();
        while (_lines.Reader.TryRead(out var line)) batch.Add(line);
        if (batch.Count > 0)
        {
            await WorkloadLogTable.EnsureAsync(_source, ct);
            await InsertAsync(batch, ct);
            Settle(batch.Count);
        }
        while (true)
        {
            var progress = Volatile.Read(ref _progress);
            if (Interlocked.Read(ref _settled) >= target) return;
            await progress.Task.WaitAsync(ct);
        }
    }

    private async Task InsertAsync(IReadOnlyList<WorkloadLogLine> batch, CancellationToken ct)
    {
        if (batch.Count == 0) return;
        await using (var command = _source.CreateCommand(
                         $"insert into {WorkloadLogTable.Name} (tenant_id, pod_id, vm_id, replica, at, stream, line) " +
                         "select * from unnest(@tenant, @pod, @vm, @replica, @at, @stream, @line)"))
        {
            command.Parameters.AddWithValue("tenant", batch.Select(l => l.TenantId).ToArray());
            command.Parameters.AddWithValue("pod", batch.Select(l => l.PodId).ToArray());
            command.Parameters.AddWithValue("vm", batch.Select(l => l.VmId).ToArray());
            command.Parameters.AddWithValue("replica", batch.Select(l => l.Replica).ToArray());
            command.Parameters.Add(new NpgsqlParameter("at", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = batch.Select(l => l.At.UtcDateTime).ToArray() });
            command.Parameters.AddWithValue("stream", batch.Select(l => l.Stream).ToArray());
            command.Parameters.AddWithValue("line", batch.Select(l => l.Line).ToArray());
            await command.ExecuteNonQueryAsync(ct);
        }
        if (_sinceTrim.Count > 10_000) _sinceTrim.Clear();
        foreach (var vm in batch.GroupBy(l => l.VmId))
        {
            _sinceTrim[vm.Key] = _sinceTrim.GetValueOrDefault(vm.Key) + vm.Count();
            if (_sinceTrim[vm.Key] < 1000) continue;
            _sinceTrim[vm.Key] = 0;
            await using var trim = _source.CreateCommand(
                $"delete from {WorkloadLogTable.Name} where vm_id = @vm and id <= " +
                $"(select id from {WorkloadLogTable.Name} where vm_id = @vm order by id desc offset @keep limit 1)");
            trim.Parameters.AddWithValue("vm", vm.Key);
            trim.Parameters.AddWithValue("keep", MaxLinesPerMicroVm);
            await trim.ExecuteNonQueryAsync(ct);
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _source.Dispose();
    }
}
