using Marten;
using Marten.Services;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// Wakes a waiting spec when a commit appends to a stream it watches, in any node of the application (the listener is
/// the fixture's, given to every node's store). A read model of that stream can only have changed then, so a spec
/// reads it again after each such commit instead of polling; the commit may come from a handler of a message this host
/// relays for a host runtime process or a guest, which Wolverine's tracked sessions of this host cannot see end.
/// </summary>
public sealed class StreamCommits : DocumentSessionListenerBase
{
    private readonly Lock _gate = new();
    private readonly Dictionary<Guid, List<Watch>> _watches = [];

    /// <summary>Watches the stream from now on: a commit after this call wakes <see cref="Watch.NextAsync"/>.</summary>
    public Watch Begin(Guid stream)
    {
        var watch = new Watch(this, stream);
        lock (_gate)
        {
            if (!_watches.TryGetValue(stream, out var list)) _watches[stream] = list = [];
            list.Add(watch);
        }
        return watch;
    }

    /// <summary>Reads, and reads again after each commit to the stream, until <paramref name="done"/>; answers the last read.</summary>
    public async Task<T> UntilAsync<T>(Guid stream, Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what)
    {
        using var commits = Begin(stream);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (!await commits.NextAsync(deadline - DateTime.UtcNow))
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:F0} s waiting until {what}; last: {value}");
        }
    }

    public override Task AfterCommitAsync(IDocumentSession session, IChangeSet commit, CancellationToken token)
    {
        lock (_gate)
        {
            if (_watches.Count == 0) return Task.CompletedTask;
            foreach (var stream in commit.GetEvents().Select(e => e.StreamId).Distinct())
                if (_watches.TryGetValue(stream, out var list))
                    foreach (var watch in list) watch.Signal();
        }
        return Task.CompletedTask;
    }

    private void End(Watch watch)
    {
        lock (_gate)
        {
            if (_watches.TryGetValue(watch.Stream, out var list) && list.Remove(watch) && list.Count == 0) _watches.Remove(watch.Stream);
        }
    }

    public sealed class Watch(StreamCommits owner, Guid stream) : IDisposable
    {
        // Counts commits not yet awaited, so one that lands between a read and the next wait is not missed.
        private readonly SemaphoreSlim _commits = new(0);

        public Guid Stream => stream;

        internal void Signal() => _commits.Release();

        /// <summary>Until the next commit to the stream (or one that came since the last call); false when the time is up.</summary>
        public Task<bool> NextAsync(TimeSpan timeout) => _commits.WaitAsync(timeout < TimeSpan.Zero ? TimeSpan.Zero : timeout);

        public void Dispose()
        {
            owner.End(this);
            _commits.Dispose();
        }
    }
}
