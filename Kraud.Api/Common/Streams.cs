using JasperFx.Events;
using JasperFx.Events.Projections;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Projections.Common;
using Kraud.Projections.Fleet;
using Marten;
using Marten.Events.Aggregation;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Common;

/// <summary>
/// A decider's state folded from its stream, with the stream's version. Fetched for writing, it also holds Marten's
/// handle to the stream (<see cref="Stream"/>): what is decided is appended there, and Marten checks at commit that the
/// stream is still at <see cref="Version"/>.
/// </summary>
public sealed record Loaded<T>(T State, int Version) where T : class, IState<T>
{
    public IEventStream<T>? Stream { get; init; }
}

/// <summary>
/// What every decider's stream shares: fetch it for writing (Marten's FetchForWriting, folded by the decider's own
/// Evolve), guard tenant and version, append what was decided; and read-only loads for queries and time travel.
/// </summary>
public static class Streams
{
    /// <summary>
    /// Lets Marten fold a decider's state (FetchForWriting): a live aggregation through the decider's own Evolve, so
    /// Kraud.Domain stays free of Marten and no copy of the state is stored beside the read models.
    /// </summary>
    public static void AddDecider<T>(this StoreOptions marten) where T : class, IState<T>
    {
        marten.Projections.Add(new DeciderProjection<T>(), ProjectionLifecycle.Live);
        marten.Events.AddEventType<Compacted<T>>();
    }

    /// <summary>
    /// The stream folded for a decision that will be appended in this session (see <see cref="Append{T}"/>): the one read
    /// ahead with the session's other reads (<see cref="ReadAheadForWriting{T}"/>) if there is one, else fetched now.
    /// </summary>
    public static async Task<Loaded<T>> FetchForWritingAsync<T>(IDocumentSession session, Guid id, CancellationToken ct = default)
        where T : class, IState<T>
    {
        if (!ReadAhead.TryTake<IEventStream<T>>(session, id, out var stream)) stream = await session.Events.FetchForWriting<T>(id, ct);
        return new Loaded<T>(stream.Aggregate ?? T.Initial, (int)(stream.StartingVersion ?? 0)) { Stream = stream };
    }

    /// <summary>The stream fetched for writing in the read-ahead's round trip; the session's next <see cref="FetchForWritingAsync{T}"/> of it takes it.</summary>
    public static void ReadAheadForWriting<T>(ReadAhead ahead, Guid id) where T : class, IState<T> =>
        ahead.Read(id, batch => batch.Events.FetchForWriting<T>(id));

    /// <summary>
    /// Several streams fetched for writing in one round trip (Marten's batched FetchForWriting): a scheduler batch's pods.
    /// Fetched one by one, each cost two round trips (version, events) of a loop that runs one pod after the other.
    /// </summary>
    public static async Task<Dictionary<Guid, Loaded<T>>> FetchManyForWritingAsync<T>(IDocumentSession session, IEnumerable<Guid> ids,
        CancellationToken ct = default) where T : class, IState<T>
    {
        var batch = session.CreateBatchQuery();
        var pending = ids.Distinct().Select(id => (Id: id, Stream: batch.Events.FetchForWriting<T>(id))).ToList();
        await batch.Execute(ct);
        var loaded = new Dictionary<Guid, Loaded<T>>(pending.Count);
        foreach (var (id, fetch) in pending)
        {
            var stream = await fetch;
            loaded[id] = new Loaded<T>(stream.Aggregate ?? T.Initial, (int)(stream.StartingVersion ?? 0)) { Stream = stream };
        }
        return loaded;
    }

    /// <summary>Read only (queries, other slices' checks): nothing is appended on what this returns.</summary>
    public static Task<Loaded<T>> LoadAsync<T>(IQuerySession session, Guid id, CancellationToken ct = default) where T : class, IState<T> =>
        LoadAsync<T>(session, id, asOf: null, ct);

    /// <param name="asOf">Fold only the events committed up to this instant (time travel, as `pod(asOf:)` and `volume(asOf:)` ask).</param>
    public static async Task<Loaded<T>> LoadAsync<T>(IQuerySession session, Guid id, DateTime? asOf, CancellationToken ct = default)
        where T : class, IState<T>
    {
        var stream = asOf is { } at
            ? await session.Events.FetchStreamAsync(id, timestamp: new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc)), token: ct)
            : await session.Events.FetchStreamAsync(id, token: ct);
        // The last event's version, not the count: a compacted stream begins with its snapshot at a later version.
        return new Loaded<T>(Snapshots.Fold<T>(stream), stream.Count == 0 ? 0 : (int)stream[^1].Version);
    }

    /// <summary>
    /// Another tenant's resource does not exist for the caller (NOT_FOUND, so existence does not leak), and a stale
    /// expected version is CONFLICT before anything is decided.
    /// </summary>
    public static void Guard(string kind, Guid id, bool exists, Guid ownerTenant, int version, Principal by, int? expectedVersion)
    {
        if (exists && by.TenantId is { } tenant && ownerTenant != tenant) throw DomainException.NotFound(kind, id);
        if (expectedVersion is { } expected && expected != version)
            throw DomainException.Conflict($"{kind} {id} is at version {version}, not {expected}: reload it and try again.");
    }

    /// <summary>
    /// Appends to the stream as it was fetched: Marten expects the version the decision was made on, so a concurrent
    /// writer makes the commit fail (CONFLICT, or a retry on fresh state for system writers), never lose an update.
    /// </summary>
    public static void Append<T>(Loaded<T> loaded, IReadOnlyList<object> events, AuditStamp stamp) where T : class, IState<T>
    {
        var stream = loaded.Stream ?? throw new InvalidOperationException($"{typeof(T).Name} was loaded for reading: fetch it for writing to append.");
        var before = stream.Events.Count;
        stream.AppendMany(events);
        stream.Events.Skip(before).Stamp(stamp);
    }

    /// <summary>
    /// Locks streams that several writers append to without a version (a host's: every pod that starts or stops there).
    /// Their inline views are folded onto the document each transaction read, so two such writers at once would lose
    /// one's update (a host would keep a microVM that stopped, or forget one that runs). Locked first, the second writer
    /// reads the first one's view.
    /// Ids are locked in order, so two writers never wait on each other in a circle.
    /// </summary>
    public static async Task LockAsync(IDocumentSession session, IEnumerable<Guid> ids)
    {
        var locked = Locked.GetOrCreateValue(session);
        var sorted = ids.Where(id => !locked.Contains(id)).Distinct().Order().ToArray();
        if (sorted.Length == 0) return;
        await session.BeginTransactionAsync(CancellationToken.None);
        await session.QueryAsync<Guid>(
            $"select id from {session.DocumentStore.Options.Events.DatabaseSchemaName}.mt_streams where id = any(?) order by id for update", sorted);
        locked.UnionWith(sorted);
    }

    /// <summary>
    /// A scheduler batch's hosts (see <see cref="PlacementCapacity"/>): locked in one statement that also reads their versions.
    /// Releases reported meanwhile wait for the batch to commit, and a cordon or drain decided meanwhile meets its version
    /// check and decides again on the new placements. Locked all at once, a batch never waits on other writers in a circle.
    /// </summary>
    public static async Task<Dictionary<Guid, long>> LockReadingVersionsAsync(IDocumentSession session, IEnumerable<Guid> ids)
    {
        var sorted = ids.Distinct().Order().ToArray();
        await session.BeginTransactionAsync(CancellationToken.None);
        var rows = await session.QueryAsync<string>(
            $"select id::text || ' ' || version::text from {session.DocumentStore.Options.Events.DatabaseSchemaName}.mt_streams " +
            "where id = any(?) order by id for update", sorted);
        Locked.GetOrCreateValue(session).UnionWith(sorted);
        return rows.Select(r => r.Split(' ')).ToDictionary(r => Guid.Parse(r[0]), r => long.Parse(r[1], CultureInfo.InvariantCulture));
    }

    /// <summary>What each session's transaction holds already (the scheduler locks its hosts once per batch, not per pod).</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IDocumentSession, HashSet<Guid>> Locked = new();

    /// <summary>
    /// Two writers locked shared streams in a circle (one transaction that decides for several pods locks their hosts pod
    /// by pod): PostgreSQL failed one.
    /// </summary>
    public static bool IsLockCircle(Exception e) =>
        e is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.DeadlockDetected }
        || e.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.DeadlockDetected };
}

/// <summary>
/// A decider's state as Marten folds it for <see cref="Streams.FetchForWritingAsync{T}"/>: the decider's own Evolve, from its
/// Initial. (Marten refuses an Evolve override when the state type also has methods named Apply or Create: deciders' states
/// name their steps otherwise.)
/// </summary>
public sealed class DeciderProjection<T> : SingleStreamProjection<T, Guid> where T : class, IState<T>
{
    public DeciderProjection() => Name = typeof(T).Name + "Decider";

    public override T Evolve(T? snapshot, Guid id, IEvent e) => Snapshots.Evolve(snapshot, e);
}
