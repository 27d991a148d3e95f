using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Projections.Fleet;
using Marten;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Common;

/// <summary>A decider's state folded from its stream, with the stream's version (what an append must expect).</summary>
public sealed record Loaded<T>(T State, int Version) where T : IState<T>;

/// <summary>What pod and volume streams share: load and fold, guard tenant and version, append what was decided.</summary>
public static class Streams
{
    public static Task<Loaded<T>> LoadAsync<T>(IQuerySession session, Guid id, CancellationToken ct = default) where T : IState<T> =>
        LoadAsync<T>(session, id, asOf: null, ct);

    /// <param name="asOf">Fold only the events committed up to this instant (time travel, as `pod(asOf:)` and `volume(asOf:)` ask).</param>
    public static async Task<Loaded<T>> LoadAsync<T>(IQuerySession session, Guid id, DateTime? asOf, CancellationToken ct = default) where T : IState<T>
    {
        var stream = asOf is { } at
            ? await session.Events.FetchStreamAsync(id, timestamp: new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc)), token: ct)
            : await session.Events.FetchStreamAsync(id, token: ct);
        return new Loaded<T>(Fold.Events<T>(stream.Select(e => e.Data)), stream.Count);
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

    /// <summary>Appends with the version the decision was made on: a concurrent writer makes the commit fail, never lose an update.</summary>
    public static void Append(IDocumentSession session, Guid id, int version, IReadOnlyList<object> events, AuditStamp stamp) =>
        (version == 0 ? session.Events.StartStream(id, events) : session.Events.Append(id, version + events.Count, events)).Stamp(stamp);

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
    /// A scheduler batch's hosts: every host of the role, locked in one statement before its capacity is read. Releases
    /// reported meanwhile wait for the batch to commit, and a cordon or drain decided meanwhile meets its version check
    /// and decides again on the new placements. Locked all at once, a batch never waits on other writers in a circle.
    /// </summary>
    public static async Task<Dictionary<Guid, Host>> LockHostsForPlacementAsync(IDocumentSession session, HostRole role)
    {
        await LockAsync(session, await session.Query<HostView>().Where(h => h.Role == role).Select(h => h.Id).ToListAsync());
        return (await session.Query<HostView>().Where(h => h.Role == role).ToListAsync()).ToDictionary(h => h.Id, h => h.Host);
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
