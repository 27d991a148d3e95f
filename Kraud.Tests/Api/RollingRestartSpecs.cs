using Kraud.Api.Health;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>
/// The issue's rolling restart: three Kraud.Api processes and four standalone host runtime processes on one database (a
/// database of this spec's own, no in-process node), a client that retries lost connections with the same Idempotency-Key
/// on the next node, and the nodes killed, restarted and stopped under it. <c>bench nodes</c> runs it with 1,000 pods.
/// </summary>
public sealed class RollingRestartSpecs(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>The issue's 1,000: every stage (kill at 30 %, restart at 60 %, SIGTERM at 80 %) falls among creates.</summary>
    private const int Pods = 1000;

    [Fact]
    public async Task pods_created_through_a_kill_a_restart_and_a_SIGTERM_of_nodes_exist_once_run_once_and_lose_nothing()
    {
        var connection = await TestDatabase.CreateAsync("kraudroll");
        try
        {
            await using var cluster = await NodeCluster.StartAsync(connection, nodes: 3, hosts: 4, hostCpu: Pods, hostMemoryMiB: Pods * 128);
            var report = await RollingRestart.RunAsync(cluster, Pods, concurrency: 6, output.WriteLine);
            output.WriteLine($"created in {report.Creating.TotalSeconds:F1} s, all RUNNING after {report.AllRunning.TotalSeconds:F1} s; " +
                             $"{report.ConnectionRetries} connection retries, {report.Replays} replayed answers, {report.WaitedForLease} waits for a lease; " +
                             $"{report.Terminated} exited {report.TerminatedExitAfter.TotalSeconds:F1} s after SIGTERM; scheduler held by {string.Join(" → ", report.SchedulerHolders)}");
            output.WriteLine($"{report.Failures.Count} failed creates, {report.Answered} answered, {report.Listed} listed, {report.Running} RUNNING, " +
                             $"{report.NotBootedOnce.Count} not booted once, {report.DuplicateMicroVms.Count} duplicate microVMs, {report.MicroVmsOnHosts} on hosts; " +
                             $"audit valid {report.AuditValid}, {report.AuditEntries} entries up to {report.AuditLastId}, {report.EventsNotAudited} events not audited; " +
                             $"{report.DeadLetters.Count} dead letters; at most {report.MostSchedulerHolders} scheduler holders, {report.SchedulerOverlaps.Count} unfinished handovers; " +
                             $"{report.SchedulerBatches.Count} scheduler batches, {report.UnmarkedPlacements} unmarked placements, {report.InterleavedPlacements.Count} interleaved; " +
                             $"{report.OverlapsByLogTime.Count} overlaps by the log's insert times");
            var handovers = string.Join("\n", report.Handovers.Select(h => $"{h.At:O} {h.Node} {h.Change} {h.Role}"));
            var placed = string.Join("\n", report.SchedulerBatches.Select(b => $"{b.Mark}: {b.Placements}"));
            output.WriteLine($"Transactions open 10 s or longer:\n{string.Join("\n", report.LongTransactions)}");
            output.WriteLine($"Handovers:\n{handovers}\nOverlaps by the log's insert times:\n{string.Join("\n", report.OverlapsByLogTime)}\nScheduler batches:\n{placed}");
            var context = $"\nHandovers:\n{handovers}\nScheduler batches:\n{placed}\nNodes:\n{cluster.NodesOutput()}";

            Assert.True(report.Failures.Count == 0, string.Join("\n", report.Failures.Take(10)) + context);
            Assert.Equal(Pods, report.Answered);
            Assert.True(report.Listed == Pods && report.Running == Pods, $"{report.Listed} pods listed, {report.Running} RUNNING{context}");
            Assert.Empty(report.DuplicateNames);
            Assert.True(report.ConnectionRetries > 0, "the client lost connections to the nodes that went down, and retried");
            // Each replica booted once: one placement, one boot, one RUNNING, one microVM on one host.
            Assert.True(report.NotBootedOnce.Count == 0, string.Join("\n", report.NotBootedOnce.Take(10)));
            Assert.Empty(report.DuplicateMicroVms);
            Assert.Equal(Pods, report.MicroVmsOnHosts);
            // The audit chain is valid and gapless, and covers every event.
            Assert.True(report.AuditValid);
            Assert.Equal(report.AuditLastId, report.AuditEntries);
            Assert.True(report.ProjectionsLate == "", $"the async projections did not catch up: {report.ProjectionsLate}\nTransactions open 10 s or longer:\n{string.Join("\n", report.LongTransactions)}{context}");
            Assert.Equal(0, report.EventsNotAudited);
            Assert.True(report.DeadLetters.Count == 0, string.Join("\n", report.DeadLetters.Take(10)));
            // The scheduler: never two holders in /health; every placement made by a batch that held it (the fence's mark),
            // the nodes that placed following one another as the log hands the scheduler on; each handover complete in the log.
            Assert.True(report.MostSchedulerHolders <= 1, $"{report.MostSchedulerHolders} nodes held the scheduler at once");
            Assert.True(report.UnmarkedPlacements == 0, $"{report.UnmarkedPlacements} placements without the scheduler's mark{context}");
            Assert.True(report.InterleavedPlacements.Count == 0, string.Join("\n", report.InterleavedPlacements) + context);
            Assert.True(report.SchedulerOverlaps.Count == 0, string.Join("\n", report.SchedulerOverlaps) + context);
            Assert.Contains(report.Handovers, h => h.Node == report.Killed && h.Change == "ejected");
            Assert.Contains(report.Handovers, h => h.Node == report.Terminated && h is { Change: "stopped", Role: "" });
            Assert.True(report.SchedulerHolders.Distinct().Count() >= 2, $"the scheduler moved when its node was killed: {string.Join(" → ", report.SchedulerHolders)}{context}");
            Assert.Equal(0, report.TerminatedExitCode);
        }
        finally
        {
            await TestDatabase.DropAsync(connection);
        }
    }
}

/// <summary>The rolling restart's checks of the scheduler find what they look for.</summary>
public sealed class RollingRestartChecksSpecs
{
    private static readonly DateTimeOffset T = new(2026, 12, 7, 8, 0, 0, TimeSpan.Zero);

    private static Handover Line(int second, string node, string change, string role = "") => new(T.AddSeconds(second), node, change, role);

    private static SchedulerBatch Batch(int second, string node) => new(node, T.AddSeconds(second), $"{node} {T.AddSeconds(second):O}", 1);

    private static readonly Handover[] AToBToA =
        [Line(0, "a", "started", "scheduler"), Line(5, "a", "stopped", "scheduler"), Line(6, "b", "started", "scheduler"), Line(9, "b", "ejected"), Line(15, "a", "started", "scheduler")];

    [Fact]
    public void placements_that_follow_the_handovers_pass_and_a_node_placing_again_after_another_took_over_is_found()
    {
        Assert.Empty(RollingRestart.InterleavedPlacements([Batch(1, "a"), Batch(2, "a"), Batch(7, "b"), Batch(16, "a")], AToBToA));
        Assert.Single(RollingRestart.InterleavedPlacements([Batch(1, "a"), Batch(7, "b"), Batch(8, "a"), Batch(9, "b")], AToBToA));
        Assert.Single(RollingRestart.InterleavedPlacements([Batch(1, "a"), Batch(7, "c")], AToBToA));
    }

    [Fact]
    public void a_handover_whose_previous_holder_never_let_go_in_the_log_is_found_whatever_the_order_of_the_lines()
    {
        Assert.Empty(RollingRestart.UnfinishedHandovers(AToBToA));
        // The release written after the next holder's start (Wolverine's lines are stamped when inserted) still counts.
        Assert.Empty(RollingRestart.UnfinishedHandovers([Line(0, "a", "started", "scheduler"), Line(6, "b", "started", "scheduler"), Line(7, "a", "stopped")]));
        Assert.Single(RollingRestart.UnfinishedHandovers([Line(0, "a", "started", "scheduler"), Line(6, "b", "started", "scheduler"), Line(7, "b", "stopped")]));
    }
}
