using JasperFx.Events;
using Kraud.Api.Common;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Kubernetes;
using Kraud.Domain.KubernetesApi;
using Kraud.Domain.Network;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Common;
using Marten;
using Npgsql;
using NpgsqlTypes;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Audit;

/// <summary>
/// The second half of a removal (ArchivedEventRemoval): a live host, pod, volume, ingress, VPC, app, cluster or Kubernetes
/// object keeps its stream, but its
/// events up to the cut, already in verified archives, are replaced by one <see cref="Compacted{T}"/> event holding the
/// decider state they fold to, at the last of them (its sequence number, version, time, tenant, headers, correlation and
/// causation stay: the row stands for that event). Every fold of a decider's state starts from it (Snapshots), so the
/// stream still loads, decides and appends, and the log stops growing with the age of what lives.
/// Marten's own CompactStreamAsync writes the snapshot the same way but stamps it with the time of the compaction and
/// clears its metadata, which would put it after the archive boundary in timelines and out of time travel before it.
/// The audit chain's entries of the replaced events stay (it is proven by them and by the archives); a chain rebuild
/// after a removal starts after the archive's last event, past every snapshot, so it never reads one.
/// </summary>
public sealed class LiveStreamCompaction(IDocumentStore store)
{
    /// <summary>Streams per transaction: each batch is read, folded and rewritten in one short transaction of its own.</summary>
    public const int BatchStreams = 500;

    /// <param name="Platform">
    /// A kind the platform projection folds: the removal finds its ended streams by the checkpoint at the cut (ArchivedEventRemoval).
    /// The others are not in the checkpoint, so nothing says when they ended: they are only compacted.
    /// </param>
    private abstract record Kind(string Start, Type Compacted, bool Platform)
    {
        public abstract object Snapshot(Guid id, IEnumerable<IEvent> events);
    }

    private sealed record Kind<T>(string Start, bool Platform = false) : Kind(Start, typeof(Compacted<T>), Platform) where T : class, IState<T>
    {
        public override object Snapshot(Guid id, IEnumerable<IEvent> events) => new Compacted<T>(Snapshots.Fold<T>(events), id, "");
    }

    /// <summary>
    /// By the type name of their first event: the platform's four kinds (PlatformEventReader's starts), and the deciders'
    /// streams that grow with a resource's life (a VPC's namespaces, an app's rollouts, a cluster's pools and kubeconfigs, a
    /// Kubernetes object's applies). A tenant (one event), an API token and a registry credential (two at most) have
    /// nothing to compact.
    /// </summary>
    private static readonly Kind[] Kinds =
    [
        new Kind<Pod>("pod_requested", Platform: true), new Kind<Volume>("volume_requested", Platform: true), new Kind<Ingress>("ingress_created", Platform: true),
        new Kind<Host>("host_registered", Platform: true),
        new Kind<Vpc>("vpc_created"), new Kind<AppInstance>("app_launch_requested"), new Kind<KubernetesCluster>("kubernetes_cluster_requested"),
        new Kind<KubeObject>("kube_object_created"),
    ];

    /// <summary>
    /// Streams whose every event is the whole state (a host's WireGuard peer set: each change lists all peers): the last
    /// event up to the cut is kept as it is and the earlier ones go, no snapshot needed.
    /// </summary>
    private static readonly string[] LatestWins = ["host_peer_set_changed"];

    /// <summary>The first event (version 1) of a stream the platform projection folds, by type name.</summary>
    public static string[] StartTypes() => Kinds.Where(k => k.Platform).Select(k => k.Start).ToArray();

    /// <summary>The snapshots such a stream begins with once compacted (always its first event left), by type name.</summary>
    public string[] SnapshotTypes() => Kinds.Where(k => k.Platform).Select(k => Name(k.Compacted)).ToArray();

    /// <summary>Compacts every live stream of these kinds with more than one event at or before the cut. Returns the streams and the events that left.</summary>
    public async Task<(long Streams, long Events)> CompactAsync(NpgsqlConnection connection, long cut, CancellationToken ct)
    {
        var schema = KraudDatabase.Schema;
        var byName = Kinds.SelectMany(k => new[] { (Name: k.Start, Kind: k), (Name: Name(k.Compacted), Kind: k) }).ToDictionary(x => x.Name, x => x.Kind);
        // Its first event left in the log says what a stream is: the start at version 1, or the snapshot of an earlier compaction.
        var candidates = new List<(Guid Id, Kind Kind)>();
        await using (var find = new NpgsqlCommand($"""
            select f.stream_id, f.type from {schema}.mt_events f
            where f.seq_id <= @cut and ((f.version = 1 and f.type = any(@starts)) or f.type = any(@snapshots))
              and (select count(*) from {schema}.mt_events e where e.stream_id = f.stream_id and e.seq_id <= @cut) > 1
            """, connection) { CommandTimeout = 0 })
        {
            find.Parameters.AddWithValue("cut", cut);
            find.Parameters.AddWithValue("starts", Kinds.Select(k => k.Start).ToArray());
            find.Parameters.AddWithValue("snapshots", Kinds.Select(k => Name(k.Compacted)).ToArray());
            await using var reader = await find.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) candidates.Add((reader.GetGuid(0), byName[reader.GetString(1)]));
        }
        var latest = await KeepLatestAsync(connection, cut, ct);

        long events = 0;
        foreach (var batch in candidates.Chunk(BatchStreams))
        {
            var ids = batch.Select(c => c.Id).ToArray();
            await using var session = store.QuerySession();
            var read = await session.Events.QueryAllRawEvents().Where(e => e.AnyTenant() && e.StreamId.IsOneOf(ids) && e.Sequence <= cut)
                .OrderBy(e => e.Sequence).ToListAsync(ct);
            var streams = read.GroupBy(e => e.StreamId).ToDictionary(g => g.Key, g => g.ToList());
            var rows = batch.Where(c => streams.TryGetValue(c.Id, out var s) && s.Count > 1).Select(c =>
            {
                var stream = streams[c.Id];
                var last = stream[^1];
                return (c.Id, last.Sequence, last.Version, Json: store.Options.Serializer().ToJson(c.Kind.Snapshot(c.Id, stream)),
                    Type: Name(c.Kind.Compacted), DotNet: DotNetName(c.Kind.Compacted), Dropped: stream.Count - 1);
            }).ToList();
            if (rows.Count == 0) continue;

            await using var tx = await connection.BeginTransactionAsync(ct);
            await using var write = new NpgsqlCommand($"""
                update {schema}.mt_events e set data = u.data::jsonb, type = u.type, mt_dotnet_type = u.dotnet
                from unnest(@seqs, @datas, @types, @dotnets) as u(seq, data, type, dotnet) where e.seq_id = u.seq;
                delete from {schema}.mt_events e using unnest(@ids, @versions) as u(id, version) where e.stream_id = u.id and e.version < u.version;
                update {schema}.mt_streams s set compacted_version = u.version from unnest(@ids, @versions) as u(id, version) where s.id = u.id;
                """, connection, tx) { CommandTimeout = 0 };
            write.Parameters.AddWithValue("seqs", rows.Select(r => r.Sequence).ToArray());
            write.Parameters.AddWithValue("datas", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Json).ToArray());
            write.Parameters.AddWithValue("types", rows.Select(r => r.Type).ToArray());
            write.Parameters.AddWithValue("dotnets", rows.Select(r => r.DotNet).ToArray());
            write.Parameters.AddWithValue("ids", rows.Select(r => r.Id).ToArray());
            write.Parameters.AddWithValue("versions", rows.Select(r => r.Version).ToArray());
            await write.ExecuteNonQueryAsync(ct);
            await tx.CommitAsync(ct);
            events += rows.Sum(r => r.Dropped);
        }
        return (candidates.Count + latest.Streams, events + latest.Events);
    }

    /// <summary>The streams of <see cref="LatestWins"/> kinds: their events up to the cut but the last leave, in one short transaction.</summary>
    private static async Task<(long Streams, long Events)> KeepLatestAsync(NpgsqlConnection connection, long cut, CancellationToken ct)
    {
        var schema = KraudDatabase.Schema;
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using var keep = new NpgsqlCommand($"""
            with last as (select stream_id as id, max(version) as version from {schema}.mt_events
                          where seq_id <= @cut and type = any(@types) group by stream_id having count(*) > 1),
                 gone as (delete from {schema}.mt_events e using last where e.stream_id = last.id and e.version < last.version returning 1),
                 marked as (update {schema}.mt_streams s set compacted_version = last.version from last where s.id = last.id returning 1)
            select (select count(*) from marked), (select count(*) from gone)
            """, connection, tx) { CommandTimeout = 0 };
        keep.Parameters.AddWithValue("cut", cut);
        keep.Parameters.AddWithValue("types", LatestWins);
        await using var reader = await keep.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var result = (reader.GetInt64(0), reader.GetInt64(1));
        await reader.DisposeAsync();
        await tx.CommitAsync(ct);
        return result;
    }

    private string Name(Type eventType) => Mapping(eventType).EventTypeName;

    private string DotNetName(Type eventType) => Mapping(eventType).DotNetTypeName;

    private JasperFx.Events.IEventType Mapping(Type eventType) => store.Options.Events.AllKnownEventTypes().FirstOrDefault(e => e.EventType == eventType)
        ?? throw new InvalidOperationException($"{eventType} is not a registered event type ({string.Join(", ", store.Options.Events.AllKnownEventTypes().Select(e => e.EventTypeName).Where(n => n.Contains("compact", StringComparison.Ordinal)))}): " +
                                               "a slice registers Compacted<T> of each compacted stream's state.");
}
