using System.Collections.Immutable;
using JasperFx;
using Kraud.Domain.Fleet;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Replay;
using Kraud.Tests.Infrastructure;
using Marten;
using Npgsql;
using Weasel.Core;

namespace Kraud.Tests.Database;

/// <summary>
/// Replay from checkpoints against replay from event 0, on a database of its own: a generated history of the real event
/// types (hosts that fail and come back, pods created, scaled, lost, placed again and deleted, volumes and ingresses
/// created and deleted, and transactions whose commit order differs from their timestamps) appended through Marten.
/// </summary>
public sealed class PlatformCheckpointSpecs : IAsyncLifetime
{
    private const string Schema = "replay";
    private string _connectionString = "";
    private DocumentStore _store = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await TestDatabase.CreateAsync("replay");
        _store = DocumentStore.For(o =>
        {
            o.Connection(_connectionString);
            o.DatabaseSchemaName = Schema;
            o.UseSystemTextJsonForSerialization(EnumStorage.AsString);
            o.AutoCreateSchemaObjects = AutoCreate.All;
        });
    }

    public async Task DisposeAsync()
    {
        _store.Dispose();
        NpgsqlConnection.ClearAllPools();
        await TestDatabase.DropAsync(_connectionString);
    }

    [Fact]
    public async Task the_platform_replayed_from_checkpoints_is_identical_to_a_fold_from_event_0_at_any_instant()
    {
        var seed = Environment.TickCount;
        var history = new GeneratedHistory(_store, new Random(seed));
        var checkpoints = new PlatformCheckpoints(_store, _connectionString, Schema);
        await checkpoints.EnsureSchemaAsync(default);

        // Checkpoints are written while the history grows, by a projection that is restarted half-way (it resumes from
        // the last stored checkpoint).
        await history.AppendAsync(steps: 300);
        await new PlatformCheckpointProjection(checkpoints, 37, TimeSpan.FromDays(1), TimeProvider.System).CatchUpAsync(await LastSeqAsync(), null, default);
        await history.AppendAsync(steps: 300);
        await new PlatformCheckpointProjection(checkpoints, 37, TimeSpan.FromDays(1), TimeProvider.System).CatchUpAsync(await LastSeqAsync(), null, default);
        await history.AppendAsync(steps: 40); // after the last checkpoint: replays read these as the tail

        var times = await TimestampsAsync();
        Assert.True(history.HostFailures > 0 && history.PodDeletions > 0 && history.VolumeDeletions > 0, $"seed {seed}: the history has failures and deletes");
        Assert.True(history.OutOfOrderCommits > 0 && await OutOfOrderAsync(), $"seed {seed}: some events commit after later-stamped ones");

        var random = new Random(seed);
        var instants = Enumerable.Range(0, 25).Select(_ => times[0] + (times[^1] - times[0]) * random.NextDouble())
            .Concat(Enumerable.Range(0, 10).Select(_ => times[random.Next(times.Count)]))
            .Append(times[0].AddSeconds(-1)).Append(times[^1].AddSeconds(1)).ToList();
        var fromCheckpoint = 0;
        foreach (var instant in instants)
        {
            var expected = Render(await checkpoints.FoldFromStartAsync(instant, default));
            Assert.Equal(expected, Render(await checkpoints.AtAsync(instant, default)));
            if ((await checkpoints.WindowAsync(instant, instant, includeFrom: false, default)).Start > 0) fromCheckpoint++;
        }
        Assert.True(fromCheckpoint > instants.Count / 2, $"seed {seed}: most replays started from a checkpoint ({fromCheckpoint} of {instants.Count})");

        // A pod's or volume's own time travel too, also of those deleted since.
        foreach (var id in history.PodIds.OrderBy(_ => random.Next()).Take(15))
            foreach (var instant in instants.Take(8))
                Assert.Equal(await FoldStreamAsync<Pod>(id, instant), Render(await checkpoints.StreamAtAsync<Pod>(id, instant, default)));
        foreach (var id in history.VolumeIds.Take(8))
            foreach (var instant in instants.Take(8))
                Assert.Equal(await FoldStreamAsync<Volume>(id, instant), Render(await checkpoints.StreamAtAsync<Volume>(id, instant, default)));
    }

    [Fact]
    public async Task a_rebuild_of_the_checkpoints_gives_the_same_replays()
    {
        var history = new GeneratedHistory(_store, new Random(7));
        var checkpoints = new PlatformCheckpoints(_store, _connectionString, Schema);
        await history.AppendAsync(steps: 150);
        var projection = new PlatformCheckpointProjection(checkpoints, 23, TimeSpan.FromDays(1), TimeProvider.System);
        await projection.CatchUpAsync(await LastSeqAsync(), null, default);
        var times = await TimestampsAsync();
        var middle = times[times.Count / 2];
        var before = Render(await checkpoints.AtAsync(middle, default));
        var written = await CheckpointRowsAsync();
        Assert.True(written.Count > 3);

        var progress = new Kraud.Projections.Common.RebuildProgress();
        await projection.RebuildAsync(await LastSeqAsync(), 0, progress, default);

        Assert.Equal(before, Render(await checkpoints.AtAsync(middle, default)));
        Assert.Equal(times.Count, progress.Processed);
        Assert.Equal(written, await CheckpointRowsAsync());
    }

    [Fact]
    public async Task checkpoints_stored_in_the_first_format_are_dropped_and_folded_again_from_event_0()
    {
        var history = new GeneratedHistory(_store, new Random(11));
        await history.AppendAsync(steps: 80);
        // The first format kept each state as jsonb and counted the resources in SQL.
        await ScalarAsync<int>($"""
            create schema if not exists {Schema};
            create table {Schema}.replay_checkpoints (seq bigint primary key, min_at timestamptz not null, max_at timestamptz not null,
              events bigint not null, resources int not null, written_at timestamptz not null default now());
            create table {Schema}.replay_states (id uuid not null, kind "char" not null, version int not null, valid int8range not null, state jsonb not null);
            insert into {Schema}.replay_checkpoints values (5, now(), now(), 5, 1);
            insert into {Schema}.replay_states values (gen_random_uuid(), 'p', 1, int8range(5, null), '[]');
            select 1;
            """);
        var checkpoints = new PlatformCheckpoints(_store, _connectionString, Schema);

        await new PlatformCheckpointProjection(checkpoints, 19, TimeSpan.FromDays(1), TimeProvider.System).CatchUpAsync(await LastSeqAsync(), null, default);

        Assert.Equal("bytea", await ScalarAsync<string>(
            $"select data_type::text from information_schema.columns where table_schema = '{Schema}' and table_name = 'replay_states' and column_name = 'state'"));
        var rows = await CheckpointRowsAsync();
        Assert.True(rows.Count > 3 && !rows.Any(r => r.StartsWith("5 ", StringComparison.Ordinal)), string.Join("; ", rows));
        var times = await TimestampsAsync();
        var middle = times[times.Count / 2];
        Assert.Equal(Render(await checkpoints.FoldFromStartAsync(middle, default)), Render(await checkpoints.AtAsync(middle, default)));
        Assert.True((await checkpoints.WindowAsync(middle, middle, includeFrom: false, default)).Start > 0);
    }

    private string Render(PlatformState state) => _store.Options.Serializer().ToJson(new
    {
        Hosts = state.Hosts.OrderBy(h => h.Key).ToList(),
        Pods = state.Pods.OrderBy(p => p.Key).ToList(),
        Volumes = state.Volumes.OrderBy(v => v.Key).ToList(),
        Ingresses = state.Ingresses.OrderBy(i => i.Key).ToList(),
    });

    private string Render<T>((T State, int Version) loaded) => _store.Options.Serializer().ToJson(new { loaded.State, loaded.Version });

    private async Task<string> FoldStreamAsync<T>(Guid id, DateTimeOffset asOf) where T : Kraud.Domain.Common.IState<T>
    {
        await using var session = _store.QuerySession();
        var events = await session.Events.FetchStreamAsync(id, timestamp: asOf);
        return Render((Kraud.Domain.Common.Fold.Events<T>(events.Select(e => e.Data)), events.Count));
    }

    private async Task<long> LastSeqAsync() => await ScalarAsync<long>($"select coalesce(max(seq_id), 0) from {Schema}.mt_events");

    private async Task<bool> OutOfOrderAsync() => await ScalarAsync<bool>(
        $"select exists (select 1 from {Schema}.mt_events a join {Schema}.mt_events b on b.seq_id > a.seq_id and b.timestamp < a.timestamp)");

    private async Task<List<string>> CheckpointRowsAsync()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            $"select seq || ' ' || min_at || ' ' || max_at || ' ' || events || ' ' || resources from {Schema}.replay_checkpoints order by seq", connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync()) rows.Add(reader.GetString(0));
        return rows;
    }

    private async Task<List<DateTimeOffset>> TimestampsAsync()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand($"select timestamp from {Schema}.mt_events order by timestamp", connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var times = new List<DateTimeOffset>();
        while (await reader.ReadAsync()) times.Add(reader.GetFieldValue<DateTimeOffset>(0));
        return times;
    }

    private async Task<T> ScalarAsync<T>(string sql) => (await SqlScalar.ValueAsync<T>(_connectionString, sql))!;
}

/// <summary>
/// A plausible platform history of the real event types, one small transaction per step, driven by the domain's own
/// Evolve so that every event fits the state it lands on.
/// </summary>
internal sealed class GeneratedHistory(IDocumentStore store, Random random)
{
    private readonly List<Host> _hosts = [];
    private readonly Dictionary<Guid, Pod> _pods = [];
    private readonly Dictionary<Guid, Volume> _volumes = [];
    private readonly List<Guid> _ingresses = [];
    private readonly Guid _tenant = Guid.NewGuid();

    public List<Guid> PodIds { get; } = [];
    public List<Guid> VolumeIds { get; } = [];
    public int HostFailures { get; private set; }
    public int PodDeletions { get; private set; }
    public int VolumeDeletions { get; private set; }
    public int OutOfOrderCommits { get; private set; }

    public async Task AppendAsync(int steps)
    {
        if (_hosts.Count == 0)
            await StepAsync(session =>
            {
                for (var i = 0; i < 8; i++)
                {
                    var e = new HostRegistered(Guid.NewGuid(), $"h{i}", "z-a", "dc", $"r{i % 2}", i < 6 ? HostRole.Compute : HostRole.Storage, 64, 65536, 4096, false,
                        "test", DateTimeOffset.UtcNow);
                    session.Events.StartStream(e.HostId, e);
                    _hosts.Add(Kraud.Domain.Fleet.Host.Initial.Evolve(e));
                }
            });
        for (var step = 0; step < steps; step++)
        {
            if (random.Next(25) == 0)
            {
                // A transaction that stamped its events before another one committed, and committed after it: its events
                // come later in the log with earlier timestamps (Marten stamps events in the client).
                await StepAsync(session => Act(session));
                var before = await LastSeqAsync();
                await StepAsync(session => Act(session));
                await using var connection = (Npgsql.NpgsqlConnection)store.Storage.Database.CreateConnection();
                await connection.OpenAsync();
                await using var backdate = new Npgsql.NpgsqlCommand(
                    $"update {store.Options.Events.DatabaseSchemaName}.mt_events set timestamp = timestamp - interval '40 milliseconds' where seq_id > @before", connection);
                backdate.Parameters.AddWithValue("before", before);
                await backdate.ExecuteNonQueryAsync();
                await Task.Delay(2);
                OutOfOrderCommits++;
            }
            else await StepAsync(session => Act(session));
        }
    }

    private async Task<long> LastSeqAsync()
    {
        await using var session = store.QuerySession();
        return (await session.QueryAsync<long>($"select coalesce(max(seq_id), 0) from {store.Options.Events.DatabaseSchemaName}.mt_events")).Single();
    }

    private async Task StepAsync(Action<IDocumentSession> act)
    {
        await using var session = store.LightweightSession();
        act(session);
        await session.SaveChangesAsync();
    }

    private void Act(IDocumentSession session)
    {
        var now = DateTimeOffset.UtcNow;
        var live = _pods.Values.Where(p => !p.Deleting).ToList();
        switch (random.Next(100))
        {
            case < 30 or >= 97 when live.Count < 40:
                {
                    var id = Guid.NewGuid();
                    var replicas = random.Next(1, 4);
                    Pod(session, id, new PodRequested(id, _tenant, new PodSpec($"p{PodIds.Count}", "default", "nginx", [], ImmutableDictionary<string, string>.Empty, 1, 64,
                        null, false, 0), replicas, "test", now), start: true);
                    PodIds.Add(id);
                    for (var r = 0; r < replicas; r++) Schedule(session, id, r, now);
                    break;
                }
            case < 55 when live.SelectMany(p => p.Instances).Any(i => i.Phase is VmPhase.Scheduled or VmPhase.Booting):
                {
                    var pod = live.First(p => p.Instances.Any(i => i.Phase is VmPhase.Scheduled or VmPhase.Booting));
                    var vm = pod.Instances.First(i => i.Phase is VmPhase.Scheduled or VmPhase.Booting);
                    Pod(session, pod.Id, vm.Phase == VmPhase.Scheduled
                        ? new PodReplicaBooting(pod.Id, vm.VmId, vm.HostId, now)
                        : new PodReplicaRunning(pod.Id, vm.VmId, vm.HostId, random.Next(5, 500), now));
                    break;
                }
            case < 65 when live.Count > 0:
                {
                    var pod = live[random.Next(live.Count)];
                    Pod(session, pod.Id, new PodDeletionRequested(pod.Id, "test", now));
                    PodDeletions++;
                    break;
                }
            case < 75 when _pods.Values.Any(p => p.Deleting && !p.Instances.IsEmpty):
                {
                    var pod = _pods.Values.First(p => p.Deleting && !p.Instances.IsEmpty);
                    var vm = pod.Instances[0];
                    Pod(session, pod.Id, new PodReplicaStopped(pod.Id, vm.VmId, vm.HostId, now));
                    Host(session, vm.HostId, new MicroVmReleased(vm.HostId, vm.VmId, "stopped", now));
                    break;
                }
            case < 79 when live.Count > 0:
                {
                    var pod = live[random.Next(live.Count)];
                    var to = random.Next(1, 4);
                    Pod(session, pod.Id, new PodScaled(pod.Id, pod.Replicas, to, "test", now));
                    foreach (var r in _pods[pod.Id].Unplaced) Schedule(session, pod.Id, r, now);
                    break;
                }
            case < 83:
                {
                    var compute = _hosts.Where(h => h.Role == HostRole.Compute).ToList();
                    var host = compute[random.Next(compute.Count)];
                    if (host.State == HostState.Failed)
                    {
                        Host(session, host.Id, new HostRecovered(host.Id, host.FailedAt ?? now, now));
                        break;
                    }
                    Host(session, host.Id, new HostFailed(host.Id, now.AddSeconds(-10), 5, "missed 5 heartbeats", now));
                    HostFailures++;
                    foreach (var pod in _pods.Values.Where(p => p.Instances.Any(i => i.HostId == host.Id)).ToList())
                        foreach (var vm in pod.Instances.Where(i => i.HostId == host.Id).ToList())
                        {
                            Pod(session, pod.Id, new PodReplicaLost(pod.Id, vm.VmId, host.Id, "host failed", true, now));
                            Host(session, host.Id, new MicroVmReleased(host.Id, vm.VmId, "host failed", now));
                            if (!pod.Deleting) Schedule(session, pod.Id, vm.Replica, now);
                        }
                    break;
                }
            case < 90:
                {
                    var id = Guid.NewGuid();
                    Volume(session, id, new VolumeRequested(id, _tenant, $"v{VolumeIds.Count}", VolumeClass.Red, 10, "z-a", "test", now), start: true);
                    VolumeIds.Add(id);
                    foreach (var host in _hosts.Where(h => h.Role == HostRole.Storage))
                    {
                        Volume(session, id, new VolumeReplicaScheduled(id, host.Id, host.Name, "z-a", host == _hosts[6], now));
                        Volume(session, id, new VolumeReplicaHealthy(id, host.Id, true, now));
                    }
                    break;
                }
            case < 94 when _volumes.Values.Any(v => !v.Deleting):
                {
                    var volume = _volumes.Values.First(v => !v.Deleting);
                    Volume(session, volume.Id, new VolumeDeletionRequested(volume.Id, "test", now));
                    foreach (var replica in volume.Replicas) Volume(session, volume.Id, new VolumeReplicaErased(volume.Id, replica.HostId, now));
                    Volume(session, volume.Id, new VolumeDeleted(volume.Id, now));
                    VolumeDeletions++;
                    break;
                }
            case < 97:
                {
                    if (_ingresses.Count > 2)
                    {
                        var gone = _ingresses[0];
                        _ingresses.RemoveAt(0);
                        session.Events.Append(gone, new IngressDeleted(gone, "test", now));
                        break;
                    }
                    var id = Guid.NewGuid();
                    var target = live.Count > 0 ? live[0].Id : Guid.NewGuid();
                    session.Events.StartStream(id, new IngressCreated(id, _tenant, $"i{id:N}"[..8], IngressKind.Managed,
                        [new IngressRoute("web.ingress.kraud.cloud", "/", target, 80)], null, [], [new IngressReplica(_hosts[0].Id, _hosts[0].Name, "z-a")], null, "test", now));
                    _ingresses.Add(id);
                    break;
                }
            default:
                var anyHost = _hosts[random.Next(_hosts.Count)];
                Host(session, anyHost.Id, new HostWireGuardKeyAnnounced(anyHost.Id, Convert.ToBase64String(Guid.NewGuid().ToByteArray()), "10.0.0.1:51820", now));
                break;
        }
    }

    private void Schedule(IDocumentSession session, Guid podId, int replica, DateTimeOffset now)
    {
        var pod = _pods[podId];
        var hosts = _hosts.Where(h => h.Role == HostRole.Compute && h.State != HostState.Failed).ToList();
        if (hosts.Count == 0) return;
        var host = hosts[random.Next(hosts.Count)];
        var generation = pod.NextGeneration(replica);
        var vm = Kraud.Domain.Pods.Pod.VmIdFor(podId, replica, generation);
        Pod(session, podId, new PodReplicaScheduled(podId, replica, generation, vm, host.Id, host.Name, now));
        Host(session, host.Id, new MicroVmPlaced(host.Id, vm, podId, _tenant, 1, 64, now));
    }

    private void Pod(IDocumentSession session, Guid id, object e, bool start = false)
    {
        if (start) session.Events.StartStream(id, e);
        else session.Events.Append(id, e);
        _pods[id] = (start ? Kraud.Domain.Pods.Pod.Initial : _pods[id]).Evolve(e);
    }

    private void Volume(IDocumentSession session, Guid id, object e, bool start = false)
    {
        if (start) session.Events.StartStream(id, e);
        else session.Events.Append(id, e);
        var next = (start ? Kraud.Domain.Volumes.Volume.Initial : _volumes[id]).Evolve(e);
        if (next.Deleted) _volumes.Remove(id);
        else _volumes[id] = next;
    }

    private void Host(IDocumentSession session, Guid id, object e)
    {
        session.Events.Append(id, e);
        var index = _hosts.FindIndex(h => h.Id == id);
        _hosts[index] = _hosts[index].Evolve(e);
    }
}
