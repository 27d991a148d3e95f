using System.Runtime.CompilerServices;
using Marten;
using Marten.Services.BatchQuerying;

namespace Kraud.Api.Common;

/// <summary>
/// Documents that a transaction deciding for many pods at once (the scheduler's batch) reads for all of them in one round
/// trip before it decides, instead of one read per pod inside its loop: each slice names what its part of a boot will
/// read (<see cref="LoadMany{T, TId}"/>), <see cref="ExecuteAsync"/> reads it all in one Marten batch, and the slice's own
/// reads go through <see cref="LoadManyAsync{T, TId}"/>, which answers from what was read ahead, a document that does not
/// exist included, and reads anything else as before. What was read ahead is what the transaction saw when it began to
/// decide, as a read in the loop would have seen it (the session's own writes are not visible to a read before it commits
/// either); a session that writes these documents and reads them again afterwards does not read ahead.
/// </summary>
public sealed class ReadAhead(IQuerySession session)
{
    private static readonly ConditionalWeakTable<IQuerySession, Dictionary<(Type, object), object?>> Known = new();

    private readonly IBatchedQuery batch = session.CreateBatchQuery();
    private readonly List<Func<Dictionary<(Type, object), object?>, Task>> reads = [];

    /// <summary>These documents are read with the others; an id that has no document is remembered as absent.</summary>
    public void LoadMany<T, TId>(IEnumerable<TId> ids, Func<T, TId> idOf) where T : class where TId : notnull
    {
        var wanted = ids.Distinct().ToArray();
        if (wanted.Length == 0) return;
        var loading = batch.LoadMany<T>().ByIdList(wanted);
        reads.Add(async known =>
        {
            foreach (var id in wanted) known[(typeof(T), id)] = null;
            foreach (var document in await loading) known[(typeof(T), idOf(document))] = document;
        });
    }

    /// <summary>
    /// Any other read of the batch (a query, a stream fetched for writing), under a key of its own: <see cref="TryTake{T}"/>
    /// hands its result to the one read it stands for.
    /// </summary>
    public void Read<T>(object key, Func<IBatchedQuery, Task<T>> read)
    {
        var reading = read(batch);
        reads.Add(async known => known[(typeof(T), key)] = await reading);
    }

    /// <summary>Everything named so far, in one round trip (none when nothing was named).</summary>
    public async Task ExecuteAsync(CancellationToken ct = default)
    {
        if (reads.Count == 0) return;
        await batch.Execute(ct);
        var known = Known.GetOrCreateValue(session);
        foreach (var read in reads) await read(known);
    }

    /// <summary>The documents with these ids that exist: from what this session read ahead when it has all of them, else read now.</summary>
    public static async Task<IReadOnlyList<T>> LoadManyAsync<T, TId>(IQuerySession session, IReadOnlyCollection<TId> ids) where T : class where TId : notnull
    {
        if (Known.TryGetValue(session, out var known) && ids.All(id => known.ContainsKey((typeof(T), id))))
            return ids.Distinct().Select(id => known[(typeof(T), id)]).OfType<T>().ToList();
        var now = session.CreateBatchQuery();
        var loading = now.LoadMany<T>().ByIdList(ids);
        await now.Execute();
        return await loading;
    }

    /// <summary>
    /// What <see cref="Read{T}"/> read under this key, once: taken, so a later read in the session (after its own writes)
    /// reads again rather than answering what the transaction saw before them.
    /// </summary>
    public static bool TryTake<T>(IQuerySession session, object key, out T value)
    {
        if (Known.TryGetValue(session, out var known) && known.Remove((typeof(T), key), out var read))
        {
            value = (T)read!;
            return true;
        }
        value = default!;
        return false;
    }

    /// <summary>One document (null when it does not exist), as <see cref="LoadManyAsync{T, TId}"/>.</summary>
    public static async Task<T?> LoadAsync<T, TId>(IQuerySession session, TId id) where T : class where TId : notnull =>
        (await LoadManyAsync<T, TId>(session, [id])).FirstOrDefault();
}
