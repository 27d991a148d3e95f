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
using Kraud.Projections.Apps;
using Kraud.Projections.Common;
using Kraud.Projections.Ingresses;
using Kraud.Projections.Kubernetes;
using Kraud.Projections.KubernetesApi;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Npgsql;
using NpgsqlTypes;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Audit;

/// <summary>
/// The second half of a removal (ArchivedEventRemoval): a live host, pod, volume, ingress, VPC, app, cluster or Kubernetes
/// object keeps its stream, but its events up to the cut, already in verified archives, are replaced by one
/// <see cref="Compacted{T}"/> event holding the decider state they fold to, at the last of them (its sequence number, version, time, tenant, headers, correlation and
/// causation stay: the row stands for that event). Every fold of a decider's state starts from it (Snapshots), so the
/// stream still loads, decides and appends, and the log stops growing with the age of what lives.
/// Marten's own CompactStreamAsync writes the snapshot the same way but stamps it with the time of the compaction and
/// clears its metadata, which would put it after the archive boundary in timelines and out of time travel before it.
/// The audit chain's entries of the replaced events stay (it is proven by them and by the archives); a chain rebuild
/// after a removal starts after the archive's last event, past every snapshot, so it never reads one.
/// An app, cluster or Kubernetes object deleted by the cut leaves whole instead, as an ended pod does: the platform's
/// kinds are found ended by the checkpoint, these by their own state.
/// </summary>
public sealed class LiveStreamCompaction(IDocumentStore store)
{
    /// <summary>Streams per transaction: each batch is read, folded and rewritten in one short transaction of its own.</summary>
    public const int BatchStreams = 500;

    /// <param name="Platform">
    /// A kind the platform projection folds: the removal finds its ended streams by the checkpoint at the cut (ArchivedEventRemoval).
    /// The others are not in the checkpoint, so nothing says when they ended: they are only compacted, or leave by <see cref="Over{T}"/>.
    /// </param>
    /// <param name="View">The inline view of a kind that can be over (one document per stream, its id): it leaves with the stream.</param>
    private abstract record Kind(string Start, Type Compacted, bool Platform, Type? View)
    {
        /// <summary>The state the events fold to, and whether the resource was over by then by its own state (see <see cref="Over{T}"/>).</summary>
        public abstract (object State, bool Ended) Fold(IEnumerable<IEvent> events);

        public abstract object Snapshot(Guid id, object state);

        /// <summary>A snapshot of this kind can say the resource ended: a stream compacted to it before it ended is looked at again.</summary>
        public abstract bool EndsByState { get; }
    }

    /// <summary>
    /// How a resource that can be over leaves the log whole, and the inline view that leaves with it: one list of the kinds
    /// that end, each with its view. <paramref name="Ended"/> null: a platform kind, over when the checkpoint at the cut no
    /// longer holds it (PlatformState drops a pod once deleted with no replica left, a volume and an ingress once deleted);
    /// otherwise the state of a resource that was deleted and to which nothing is appended any more (the decider refuses
    /// every command but a new create): such a stream with no event after the cut leaves whole, as an ended pod's does.
    /// </summary>
    private sealed record Over<T>(Type View, Func<T, bool>? Ended = null);

    private sealed record Kind<T>(string Start, bool Platform = false, Over<T>? Over = null)
        : Kind(Start, typeof(Compacted<T>), Platform, Over?.View) where T : class, IState<T>
    {
        public override (object State, bool Ended) Fold(IEnumerable<IEvent> events)
        {
            var state = Snapshots.Fold<T>(events);
            return (state, Over?.Ended?.Invoke(state) == true);
        }

        public override object Snapshot(Guid id, object state) => new Compacted<T>((T)state, id, "");

        public override bool EndsByState => Over?.Ended is not null;
    }

    /// <summary>
    /// By the type name of their first event: the platform's four kinds (PlatformEventReader's starts), and the deciders'
    /// streams that grow with a resource's life (a VPC's namespaces, an app's rollouts, a cluster's pools and kubeconfigs, a
    /// Kubernetes object's applies). A tenant (one event), an API token and a registry credential (two at most) have
    /// nothing to compact. A deleted app is over once no rollout runs (it would append its end) and its volumes, if
    /// any, were released (AppReleaseHandler appends that), as the API's DELETED says; a
    /// cluster once its deletion was asked for (its pods and objects are deleted in that transaction), a Kubernetes object
    /// once deleted (a new object of that name starts its stream again at the next version, with a new uid); a VPC and a
    /// host are never over.
    /// </summary>
    private static readonly Kind[] Kinds =
    [
        new Kind<Pod>("pod_requested", Platform: true, new Over<Pod>(typeof(PodView))),
        new Kind<Volume>("volume_requested", Platform: true, new Over<Volume>(typeof(VolumeView))),
        new Kind<Ingress>("ingress_created", Platform: true, new Over<Ingress>(typeof(IngressView))),
        new Kind<Host>("host_registered", Platform: true),
        new Kind<Vpc>("vpc_created"),
        new Kind<AppInstance>("app_launch_requested", Over: new Over<AppInstance>(typeof(AppInstanceView),
            a => a is { Exists: true, Phase: AppPhase.Deleting, Rollout: null } && (a.Released || a.Volumes.IsEmpty))),
        new Kind<KubernetesCluster>("kubernetes_cluster_requested", Over: new Over<KubernetesCluster>(typeof(KubernetesClusterView), c => c is { Exists: true, Deleting: true })),
        new Kind<KubeObject>("kube_object_created", Over: new Over<KubeObject>(typeof(KubeObjectView), o => o.Id != Guid.Empty && !o.Exists)),
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

    /// <summary>
    /// Compacts every live stream of these kinds with more than one event at or before the cut, and removes whole the
    /// streams of the kinds outside the checkpoint whose resource had ended by the cut and that have no event after it
    /// (with their inline view: folded from nothing, a rebuild would not make it either). Their mt_streams rows stay, as
    /// an ended pod's do: an append still meets the stream's version. A stream compacted before its resource ended (one
    /// snapshot up to the cut) is looked at again for that.
    /// </summary>
    public async Task<CompactionResult> CompactAsync(NpgsqlConnection connection, long cut, CancellationToken ct)
    {
        var schema = KraudDatabase.Schema;
        var byName = Kinds.SelectMany(k => new[] { (Name: k.Start, Kind: k), (Name: Name(k.Compacted), Kind: k) }).ToDictionary(x => x.Name, x => x.Kind);
        // Its first event left in the log says what a stream is: its start, or the snapshot of an earlier compaction. The start
        // is at version 1 but for a Kubernetes object created again after its stream left whole (its name is its id).
        var candidates = new List<(Guid Id, Kind Kind, bool Later)>();
        await using (var find = new NpgsqlCommand($"""
            select f.stream_id, f.type, n.later from {schema}.mt_events f,
              lateral (select (select count(*) from {schema}.mt_events e where e.stream_id = f.stream_id and e.seq_id <= @cut) as upto,
                              exists (select 1 from {schema}.mt_events e where e.stream_id = f.stream_id and e.seq_id > @cut) as later) n
            where f.seq_id <= @cut
              and ((f.type = any(@starts) and not exists (select 1 from {schema}.mt_events b where b.stream_id = f.stream_id and b.version < f.version))
                   or f.type = any(@snapshots))
              and (n.upto > 1 or (f.type = any(@ending) and not n.later))
            """, connection) { CommandTimeout = 0 })
        {
            find.Parameters.AddWithValue("cut", cut);
            find.Parameters.AddWithValue("starts", Kinds.Select(k => k.Start).ToArray());
            find.Parameters.AddWithValue("snapshots", Kinds.Select(k => Name(k.Compacted)).ToArray());
            find.Parameters.AddWithValue("ending", Kinds.Where(k => k.EndsByState).Select(k => Name(k.Compacted)).ToArray());
            await using var reader = await find.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) candidates.Add((reader.GetGuid(0), byName[reader.GetString(1)], reader.GetBoolean(2)));
        }
        var latest = await KeepLatestAsync(connection, cut, ct);

        long compactedStreams = 0, compactedEvents = 0, removedStreams = 0, removedEvents = 0;
        foreach (var batch in candidates.Chunk(BatchStreams))
        {
            var ids = batch.Select(c => c.Id).ToArray();
            await using var session = store.QuerySession();
            var read = await session.Events.QueryAllRawEvents().Where(e => e.AnyTenant() && e.StreamId.IsOneOf(ids) && e.Sequence <= cut)
                .OrderBy(e => e.Sequence).ToListAsync(ct);
            var streams = read.GroupBy(e => e.StreamId).ToDictionary(g => g.Key, g => g.ToList());
            var folded = batch.Where(c => streams.ContainsKey(c.Id)).Select(c => (c.Id, c.Kind, c.Later, Events: streams[c.Id], Folded: c.Kind.Fold(streams[c.Id]))).ToList();
            var gone = folded.Where(s => s.Folded.Ended && !s.Later).ToList();
            var rows = folded.Where(s => !(s.Folded.Ended && !s.Later) && s.Events.Count > 1).Select(s =>
            {
                var last = s.Events[^1];
                return (s.Id, last.Sequence, last.Version, Json: store.Options.Serializer().ToJson(s.Kind.Snapshot(s.Id, s.Folded.State)),
                    Type: Name(s.Kind.Compacted), DotNet: DotNetName(s.Kind.Compacted), Dropped: s.Events.Count - 1);
            }).ToList();
            if (rows.Count == 0 && gone.Count == 0) continue;

            await using var tx = await connection.BeginTransactionAsync(ct);
            if (rows.Count > 0)
            {
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
            }
            if (gone.Count > 0)
            {
                // Every event of such a stream is at or before the cut (none after it), all in verified archives.
                var views = gone.Where(s => s.Kind.View is not null).GroupBy(s => s.Kind.View!)
                    .Select(g => (Table: ViewTable(g.Key), Parameter: ViewParameter(g.Key), Ids: g.Select(s => s.Id).ToArray())).ToList();
                await using var remove = new NpgsqlCommand($"""
                    delete from {schema}.mt_events where stream_id = any(@gone) and seq_id <= @cut;
                    {string.Join("\n", views.Select(v => $"delete from {v.Table} where id = any(@{v.Parameter});"))}
                    """, connection, tx) { CommandTimeout = 0 };
                remove.Parameters.AddWithValue("gone", gone.Select(s => s.Id).ToArray());
                remove.Parameters.AddWithValue("cut", cut);
                foreach (var view in views) remove.Parameters.AddWithValue(view.Parameter, view.Ids);
                await remove.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
            compactedStreams += rows.Count;
            compactedEvents += rows.Sum(r => r.Dropped);
            removedStreams += gone.Count;
            removedEvents += gone.Sum(s => s.Events.Count);
        }
        return new CompactionResult(compactedStreams + latest.Streams, compactedEvents + latest.Events, removedStreams, removedEvents);
    }

    /// <summary>
    /// The inline views of the platform's kinds that can be over, each with the type names a stream of the kind begins
    /// with in the log (its start, or the snapshot of an earlier compaction): ArchivedEventRemoval deletes a view in the
    /// statement that deletes that first event, the last of the stream's to go.
    /// </summary>
    public IReadOnlyList<(string Table, string[] FirstTypes)> PlatformViews() =>
        Kinds.Where(k => k is { Platform: true, View: not null }).Select(k => (ViewTable(k.View!), new[] { k.Start, Name(k.Compacted) })).ToList();

    /// <summary>Marten's table of a view (its default alias: the type's name in lower case, as the other raw statements here name theirs).</summary>
    private static string ViewTable(Type view) => $"{KraudDatabase.Schema}.mt_doc_{view.Name.ToLowerInvariant()}";

    private static string ViewParameter(Type view) => "view_" + view.Name.ToLowerInvariant();

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

/// <param name="Streams">Streams compacted (snapshots written, peer sets cut to their last change).</param>
/// <param name="Events">Events those snapshots replaced.</param>
/// <param name="RemovedStreams">Streams of ended apps, clusters and Kubernetes objects that left whole.</param>
/// <param name="RemovedEvents">Their events.</param>
public sealed record CompactionResult(long Streams, long Events, long RemovedStreams, long RemovedEvents);
