using Kraud.Domain.Pods;
using Marten;
using Marten.Services;
using Npgsql;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// Fault injection for the transaction of a command: once armed for a pod name, the first commit that starts that pod
/// succeeds in the database and then fails as if the connection dropped before its answer arrived (a transient
/// <see cref="NpgsqlException"/>), so the handler sees an error for a transaction that did commit.
/// </summary>
public sealed class CommitFaults : DocumentSessionListenerBase
{
    private readonly Lock _gate = new();
    private readonly HashSet<string> _armed = [];
    private int _fired;

    public int Fired => Volatile.Read(ref _fired);

    public void FailAfterCommitOfPod(string podName)
    {
        lock (_gate) _armed.Add(podName);
    }

    public override Task AfterCommitAsync(IDocumentSession session, IChangeSet commit, CancellationToken token)
    {
        foreach (var e in commit.GetEvents())
        {
            if (e.Data is not PodRequested requested) continue;
            lock (_gate)
            {
                if (!_armed.Remove(requested.Spec.Name)) continue;
            }
            Interlocked.Increment(ref _fired);
            throw new NpgsqlException("simulated: the connection dropped after the commit, before its answer", new IOException("connection reset"));
        }
        return Task.CompletedTask;
    }
}
