using System.Collections.Immutable;
using System.Text.Json;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Projections.Audit;
using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Kraud.Bench;

/// <summary>
/// Writes a long platform history of the real event types straight into Marten's tables with binary COPY (Marten's own
/// append path writes about 5,000 events/s here, so ten million would take hours): pods created, placed, booted and
/// deleted again so that about <c>live</c> run at any time, and now and then a compute host that fails (its microVMs
/// are lost and placed again elsewhere) and comes back. Event bodies are serialized by Marten's serializer and the type
/// names are those Marten gave the same types in a sample written through a session, so the rows are Marten's own.
/// Timestamps advance 125 µs per event (a platform creating 1,000 pods per second) from the moment it starts.
/// </summary>
public sealed class BulkHistory(IDocumentStore store, string connectionString, Guid tenant, IReadOnlyList<(Guid Id, string Name)> hosts, int live)
{
    private const int Chunk = 50_000;
    private static readonly TimeSpan Step = TimeSpan.FromTicks(1250);

    private readonly Dictionary<string, (string Alias, string DotNet)> _types = [];
    private readonly Dictionary<Guid, int> _versions = [];
    private readonly Queue<Guid> _running = new();
    private readonly Dictionary<Guid, (PodInstance Vm, int Generation)> _pods = [];
    private readonly Dictionary<Guid, HashSet<Guid>> _vmsOnHost = [];
    private readonly List<Row> _rows = new(Chunk + 10_000);
    private readonly List<Guid> _newStreams = [];
    private DateTimeOffset _clock;
    private int _podCount;

    public int Pods => _podCount;
    public int HostFailures { get; private set; }
    public DateTimeOffset FirstAt { get; private set; }
    public DateTimeOffset LastAt => _clock;

    private readonly record struct Row(Guid Stream, int Version, object Data, DateTimeOffset At, string Command, string CommandId, string Correlation);

    /// <summary>Learns Marten's names for the event types from a sample written through a session.</summary>
    public async Task LearnTypesAsync(Guid spareHost)
    {
        var pod = Guid.NewGuid();
        var vm = Pod.VmIdFor(pod, 0, 0);
        var host = hosts[0];
        var now = DateTimeOffset.UtcNow;
        await using (var session = store.LightweightSession())
        {
            session.Events.StartStream(pod, Requested(pod, "sample", now), new PodReplicaScheduled(pod, 0, 0, vm, host.Id, host.Name, now),
                new PodReplicaBooting(pod, vm, host.Id, now), new PodReplicaRunning(pod, vm, host.Id, 1, now),
                new PodReplicaLost(pod, vm, host.Id, "sample", true, now), new PodDeletionRequested(pod, "bench", now),
                new PodReplicaStopped(pod, vm, host.Id, now));
            session.Events.Append(host.Id, new MicroVmPlaced(host.Id, vm, pod, tenant, 1, 64, now), new MicroVmReleased(host.Id, vm, "sample", now));
            session.Events.Append(spareHost, new HostFailed(spareHost, now, 5, "sample", now), new HostRecovered(spareHost, now, now));
            await session.SaveChangesAsync();
        }
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand("select distinct type, mt_dotnet_type from kraud.mt_events", connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) _types[reader.GetString(1).Split(',')[0]] = (reader.GetString(0), reader.GetString(1));
        await reader.CloseAsync();
        await using var versions = new NpgsqlCommand("select id, version from kraud.mt_streams where id = any(@ids)", connection);
        versions.Parameters.AddWithValue("ids", hosts.Select(h => h.Id).ToArray());
        await using var rows = await versions.ExecuteReaderAsync();
        while (await rows.ReadAsync()) _versions[rows.GetGuid(0)] = (int)rows.GetInt64(1);
    }

    /// <summary>Appends about <paramref name="events"/> events; answers how many.</summary>
    public async Task<long> AppendAsync(long events)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        _clock = DateTimeOffset.UtcNow.AddSeconds(1);
        FirstAt = _clock;
        long written = 0;
        var failEvery = Math.Max(events / 8, 50_000);
        var nextFailure = failEvery / 2;
        var random = new Random(21);
        while (written + _rows.Count < events)
        {
            CreatePod(random);
            if (_running.Count > live) DeletePod(_running.Dequeue());
            if (written + _rows.Count >= nextFailure)
            {
                FailHost(random);
                nextFailure += failEvery;
            }
            if (_rows.Count >= Chunk) written += await FlushAsync(connection);
        }
        written += await FlushAsync(connection);
        await using var versions = new NpgsqlCommand(
            "update kraud.mt_streams s set version = m.v from (select stream_id, max(version) v from kraud.mt_events group by stream_id) m " +
            "where s.id = m.stream_id and s.version <> m.v", connection)
        { CommandTimeout = 0 };
        await versions.ExecuteNonQueryAsync();
        return written;
    }

    private PodRequested Requested(Guid pod, string name, DateTimeOffset at) =>
        new(pod, tenant, new PodSpec(name, $"ns{_podCount / 500 % 64}", "nginx", [], ImmutableDictionary<string, string>.Empty, 1, 64, null, false, 0), 1, "bench", at);

    private void CreatePod(Random random)
    {
        var pod = Guid.NewGuid();
        var host = hosts[random.Next(hosts.Count)];
        var vm = Pod.VmIdFor(pod, 0, 0);
        var command = Guid.NewGuid().ToString();
        _newStreams.Add(pod);
        Add(pod, Requested(pod, $"p{_podCount++}", _clock), "CreatePod", command);
        Add(pod, new PodReplicaScheduled(pod, 0, 0, vm, host.Id, host.Name, _clock), "CreatePod", command);
        Add(host.Id, new MicroVmPlaced(host.Id, vm, pod, tenant, 1, 64, _clock), "CreatePod", command);
        Add(pod, new PodReplicaBooting(pod, vm, host.Id, _clock), "CreatePod", command);
        Add(pod, new PodReplicaRunning(pod, vm, host.Id, random.Next(80, 400), _clock), "CreatePod", command);
        Place(pod, vm, host, 0);
        _running.Enqueue(pod);
    }

    private void DeletePod(Guid pod)
    {
        if (!_pods.Remove(pod, out var placed)) return;
        var command = Guid.NewGuid().ToString();
        Add(pod, new PodDeletionRequested(pod, "bench", _clock), "DeletePod", command);
        Add(pod, new PodReplicaStopped(pod, placed.Vm.VmId, placed.Vm.HostId, _clock), "DeletePod", command);
        Add(placed.Vm.HostId, new MicroVmReleased(placed.Vm.HostId, placed.Vm.VmId, "stopped", _clock), "DeletePod", command);
        _vmsOnHost[placed.Vm.HostId].Remove(pod);
    }

    /// <summary>A host fails: each of its microVMs is lost and placed again on another host; the host then comes back, empty.</summary>
    private void FailHost(Random random)
    {
        var victim = hosts[random.Next(hosts.Count)];
        var command = Guid.NewGuid().ToString();
        Add(victim.Id, new HostFailed(victim.Id, _clock.AddSeconds(-10), 5, "missed 5 heartbeats", _clock), "MarkHostFailed", command);
        foreach (var pod in _vmsOnHost.GetValueOrDefault(victim.Id, []).ToList())
        {
            var (vm, generation) = _pods[pod];
            var to = hosts.Where(h => h.Id != victim.Id).ElementAt(random.Next(hosts.Count - 1));
            var next = Pod.VmIdFor(pod, 0, generation + 1);
            Add(pod, new PodReplicaLost(pod, vm.VmId, victim.Id, "host failed", true, _clock), "MarkHostFailed", command);
            Add(victim.Id, new MicroVmReleased(victim.Id, vm.VmId, "host failed", _clock), "MarkHostFailed", command);
            Add(pod, new PodReplicaScheduled(pod, 0, generation + 1, next, to.Id, to.Name, _clock), "MarkHostFailed", command);
            Add(to.Id, new MicroVmPlaced(to.Id, next, pod, tenant, 1, 64, _clock), "MarkHostFailed", command);
            Add(pod, new PodReplicaBooting(pod, next, to.Id, _clock), "MarkHostFailed", command);
            Add(pod, new PodReplicaRunning(pod, next, to.Id, random.Next(80, 400), _clock), "MarkHostFailed", command);
            _vmsOnHost[victim.Id].Remove(pod);
            Place(pod, next, to, generation + 1);
        }
        Add(victim.Id, new HostRecovered(victim.Id, _clock, _clock.AddSeconds(30)), "RecoverHost", Guid.NewGuid().ToString());
        HostFailures++;
    }

    private void Place(Guid pod, Guid vm, (Guid Id, string Name) host, int generation)
    {
        _pods[pod] = (new PodInstance(0, generation, vm, host.Id, host.Name, VmPhase.Running, null, null, null), generation);
        if (!_vmsOnHost.TryGetValue(host.Id, out var vms)) _vmsOnHost[host.Id] = vms = [];
        vms.Add(pod);
    }

    private void Add(Guid stream, object data, string command, string commandId)
    {
        var version = _versions[stream] = _versions.GetValueOrDefault(stream) + 1;
        _rows.Add(new Row(stream, version, data, _clock, command, commandId, commandId));
        _clock += Step;
    }

    private async Task<long> FlushAsync(NpgsqlConnection connection)
    {
        if (_rows.Count == 0) return 0;
        var serializer = store.Options.Serializer();
        var seqs = new List<long>(_rows.Count);
        // The numbers are drawn inside the transaction that writes them: the daemon's high-water agent then sees a live
        // transaction behind the gap and waits for it, instead of skipping the gap after a few seconds (drawn outside,
        // a chunk committed after the mark had moved past it, and the checkpoint writer never saw it).
        await using var tx = await connection.BeginTransactionAsync();
        await using (var next = new NpgsqlCommand("select nextval('kraud.mt_events_sequence') from generate_series(1, @n)", connection, tx))
        {
            next.Parameters.AddWithValue("n", _rows.Count);
            await using var reader = await next.ExecuteReaderAsync();
            while (await reader.ReadAsync()) seqs.Add(reader.GetInt64(0));
        }
        await using (var streams = await connection.BeginBinaryImportAsync("copy kraud.mt_streams (id, version, timestamp, created) from stdin (format binary)"))
        {
            foreach (var id in _newStreams)
            {
                await streams.StartRowAsync();
                await streams.WriteAsync(id, NpgsqlDbType.Uuid);
                await streams.WriteAsync(1L, NpgsqlDbType.Bigint);
                await streams.WriteAsync(_rows[0].At, NpgsqlDbType.TimestampTz);
                await streams.WriteAsync(_rows[0].At, NpgsqlDbType.TimestampTz);
            }
            await streams.CompleteAsync();
        }
        await using (var copy = await connection.BeginBinaryImportAsync(
                         "copy kraud.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, headers, is_archived) " +
                         "from stdin (format binary)"))
        {
            for (var i = 0; i < _rows.Count; i++)
            {
                var row = _rows[i];
                var (alias, dotnet) = _types[row.Data.GetType().FullName!];
                await copy.StartRowAsync();
                await copy.WriteAsync(seqs[i], NpgsqlDbType.Bigint);
                await copy.WriteAsync(Guid.CreateVersion7(), NpgsqlDbType.Uuid);
                await copy.WriteAsync(row.Stream, NpgsqlDbType.Uuid);
                await copy.WriteAsync((long)row.Version, NpgsqlDbType.Bigint);
                await copy.WriteAsync(serializer.ToJson(row.Data), NpgsqlDbType.Jsonb);
                await copy.WriteAsync(alias, NpgsqlDbType.Varchar);
                await copy.WriteAsync(row.At, NpgsqlDbType.TimestampTz);
                await copy.WriteAsync("*DEFAULT*", NpgsqlDbType.Varchar);
                await copy.WriteAsync(dotnet, NpgsqlDbType.Varchar);
                await copy.WriteAsync(row.Correlation, NpgsqlDbType.Varchar);
                await copy.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, string>
                {
                    [AuditHeaders.Actor] = "bench", [AuditHeaders.Tenant] = tenant.ToString(), [AuditHeaders.Command] = row.Command,
                    [AuditHeaders.CommandId] = row.CommandId,
                }), NpgsqlDbType.Jsonb);
                await copy.WriteAsync(false, NpgsqlDbType.Boolean);
            }
            await copy.CompleteAsync();
        }
        await tx.CommitAsync();
        var count = _rows.Count;
        _rows.Clear();
        _newStreams.Clear();
        return count;
    }
}
