using JasperFx.Core;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Common;

/// <summary>
/// A scheduler batch places only while its node is the scheduler's holder of record. Wolverine keeps one row per agent
/// in its assignment table (the agent's address is the key, so the table names one node at a time); the batch reads
/// that row FOR SHARE in its own transaction before it reads or locks anything else, and keeps the lock to its commit.
/// A handover writes the row (the new holder's start, the old one's stop, the leader's ejection of a dead node), so it
/// waits for the old holder's batch in flight to commit, and every batch that begins after it sees the new holder.
/// What the exclusive listener alone does not give: a node that has stopped listening still runs the batches it had
/// received, and a killed node's received requests are recovered by whichever node finds them; without the fence those
/// placed beside the new holder's. With it, a batch of a node that is not the holder places nothing and sends its
/// requests back to the scheduler's queue, where the holder reads them.
/// </summary>
public static class SchedulerFence
{
    /// <summary>The header on every event a scheduler batch appends: its node and the database's time when the batch began.</summary>
    public const string Header = "kraud-scheduler";

    /// <summary>Wolverine's message storage (its node and assignment tables) in Kraud's database.</summary>
    public const string WolverineSchema = "wolverine";

    /// <summary>How long a refused request waits before it goes back to the queue: the new holder's row may be a moment behind its listener.</summary>
    private static readonly TimeSpan Resend = 250.Milliseconds();

    /// <summary>
    /// The batch's mark (<paramref name="node"/> and the database's time) when this node holds the scheduler of
    /// <paramref name="queue"/>, with the row that says so locked to the batch's commit; null when it does not, and then
    /// the batch's requests go back to the queue (with the batch's commit) and the caller places nothing.
    /// </summary>
    public static async Task<string?> HoldAsync<T>(IDocumentSession session, IMessageContext context, IWolverineRuntime runtime, string node, string queue,
        IReadOnlyList<T> requests) where T : notnull
    {
        await session.BeginTransactionAsync(CancellationToken.None);
        const string Now = "to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
        // A process alone (Solo) has no assignments: it holds everything.
        var began = runtime.Options.Durability.Mode != DurabilityMode.Balanced
            ? await session.QueryAsync<string>($"select {Now}")
            : await session.QueryAsync<string>($"select {Now} from {WolverineSchema}.wolverine_node_assignments where id = ? and node_id = ? for share",
                AgentOf(queue), runtime.Options.UniqueNodeId);
        if (began.Count == 0)
        {
            runtime.LoggerFactory.CreateLogger(typeof(SchedulerFence)).LogWarning(
                "Node {Node} does not hold the scheduler of {Queue} (any more or yet): {Count} requests go back to the queue", node, queue, requests.Count);
            foreach (var request in requests) await context.SendAsync(request, new DeliveryOptions { ScheduleDelay = Resend });
            return null;
        }
        return $"{node} {began[0]}";
    }

    /// <summary>Puts the batch's mark on every event it appended (call it after the last append).</summary>
    public static void Mark(IDocumentSession session, string mark)
    {
        foreach (var stream in session.PendingChanges.Streams())
            foreach (var e in stream.Events) e.SetHeader(Header, mark);
    }

    /// <summary>The address Wolverine gives the exclusive listener of a PostgreSQL queue, the key of its assignment.</summary>
    public static string AgentOf(string queue) => $"wolverine-listener://postgresql/{queue}";
}
