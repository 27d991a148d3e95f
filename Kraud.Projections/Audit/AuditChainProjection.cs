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
        foreach (var e in events)
            linker.Link(new AuditedEvent(e.Sequence, e.Timestamp, e.StreamId, e.EventTypeName, e.CorrelationId, e.CausationId, Header(e, AuditHeaders.Actor),
                Header(e, AuditHeaders.Tenant), Header(e, AuditHeaders.Command), Header(e, AuditHeaders.CommandId)), entry => operations.Store(entry));
        operations.Store(linker.Head);
        _pending = linker.Head;
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
