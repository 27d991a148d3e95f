using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace Kraud.Projections.Audit;

/// <summary>
/// Turns the event log into a hash chain (async). Each command gets one entry when its first event is seen, then each
/// event gets one. Everything in an entry comes from the event and its metadata, so a rebuild yields the identical chain.
/// </summary>
public sealed class AuditChainProjection : IProjection
{
    public const string Name = "AuditChain";

    // The daemon may apply the next batch before the previous one is committed; the head it left is kept here
    // and used only when it is newer than the stored one and directly precedes this batch.
    private AuditChainHead? _pending;

    private readonly Lock _gate = new();
    private int _holds;
    private TaskCompletionSource _open = Opened();

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    /// <summary>
    /// Holds the daemon's agent at the start of its next batch until disposed: a bulk rebuild writes the chain
    /// meanwhile (the coordinator brings a stopped or paused agent back within seconds, so stopping it is not enough).
    /// </summary>
    public IDisposable Hold()
    {
        lock (_gate)
            if (_holds++ == 0) _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return new Held(this);
    }

    private sealed class Held(AuditChainProjection projection) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
            lock (projection._gate)
                if (--projection._holds == 0) projection._open.TrySetResult();
        }
    }

    public async Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        Task open;
        lock (_gate) open = _open.Task;
        await open.WaitAsync(cancellation);
        if (events.Count == 0) return;
        var stored = await operations.LoadAsync<AuditChainHead>(AuditChainHead.PlatformChain, cancellation);
        var linker = new AuditChainLinker(Pick(stored, _pending, events[0].Sequence));
        var entries = new List<AuditEntry>(events.Count * 2);
        foreach (var e in events)
            linker.Link(new AuditedEvent(e.Sequence, e.Timestamp, e.StreamId, e.EventTypeName, e.CorrelationId, e.CausationId, Header(e, AuditHeaders.Actor),
                Header(e, AuditHeaders.Tenant), Header(e, AuditHeaders.Command), Header(e, AuditHeaders.CommandId)), entries.Add);
        if (entries.Count > 0) await WriteAsync(operations, entries, cancellation);
        operations.Store(linker.Head);
        _pending = linker.Head;
    }

    /// <summary>
    /// The batch's entries in one statement of the batch's transaction. Stored one by one they were a document upsert
    /// each, about 13 per pod and the most frequent statement of the pods bench; the rows are the ones Store wrote
    /// (the same JSON, a new version, the insert-or-replace a re-applied batch needs) and the ones the bulk rebuild copies.
    /// </summary>
    private static async Task WriteAsync(IDocumentOperations operations, List<AuditEntry> entries, CancellationToken cancellation)
    {
        var store = operations.DocumentStore;
        await store.Storage.Database.EnsureStorageExistsAsync(typeof(AuditEntry), cancellation);
        var serializer = store.Options.Serializer();
        var ids = new long[entries.Count];
        var data = new string[entries.Count];
        var versions = new Guid[entries.Count];
        var tenants = new Guid?[entries.Count];
        var times = new DateTimeOffset[entries.Count];
        var resources = new Guid?[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            ids[i] = entries[i].Id;
            data[i] = serializer.ToJson(entries[i]);
            versions[i] = Guid.CreateVersion7();
            tenants[i] = entries[i].TenantId;
            times[i] = entries[i].At.ToUniversalTime();
            resources[i] = entries[i].ResourceId;
        }
        // The duplicated columns (MartenSetup) beside the JSON, as Marten's own upsert would write them.
        operations.QueueSqlCommand(
            $"insert into {store.Options.DatabaseSchemaName}.mt_doc_auditentry (id, data, mt_version, mt_dotnet_type, {AuditEntry.Columns}) " +
            "select e.id, e.data::jsonb, e.version, ?, e.tenant_id, e.at, e.resource_id " +
            "from unnest(?::bigint[], ?::text[], ?::uuid[], ?::uuid[], ?::timestamptz[], ?::uuid[]) as e(id, data, version, tenant_id, at, resource_id) " +
            "on conflict (id) do update set data = excluded.data, mt_version = excluded.mt_version, mt_dotnet_type = excluded.mt_dotnet_type, " +
            "tenant_id = excluded.tenant_id, at = excluded.at, resource_id = excluded.resource_id, mt_last_modified = transaction_timestamp()",
            typeof(AuditEntry).FullName!, ids, data, versions, tenants, times, resources);
    }

    /// <summary>Forgets the head of the last batch (a bulk rebuild rewrote the chain underneath).</summary>
    public void Forget() => _pending = null;

    private static AuditChainHead Pick(AuditChainHead? stored, AuditChainHead? pending, long firstSeq)
    {
        var fromStore = stored ?? new AuditChainHead();
        if (pending is not null && pending.LastEventSeq > fromStore.LastEventSeq && pending.LastEventSeq < firstSeq) return pending;
        return fromStore;
    }

    private static string? Header(IEvent e, string name) =>
        e.Headers is not null && e.Headers.TryGetValue(name, out var value) ? value?.ToString() : null;
}
