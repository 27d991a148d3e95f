using System.Diagnostics;
using Kraud.Api.Database;
using Kraud.Tests.Infrastructure;
using Npgsql;

namespace Kraud.Bench;

/// <summary>
/// Several control-plane nodes on one PostgreSQL (issue 18), all real processes: Kraud.Api nodes and standalone host
/// runtimes (simulated driver). Pods/s with 1, 2 and 3 nodes (the creates spread over the nodes), the scheduler's
/// handover when its node is stopped (SIGTERM) and killed (SIGKILL), and the issue's rolling restart with --pods pods.
/// </summary>
public static class NodesBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var root = Path.Combine(Path.GetTempPath(), $"kraud-bench-{Guid.NewGuid():N}"[..30]);
        var postgres = await EmbeddedPostgres.StartAsync(Path.Combine(root, "pg"), "kraud_bench", durable: options.Durable);
        try
        {
            var perRound = Math.Max(30, options.Pods / 4);
            var rates = new List<(int Nodes, double Created, double Running)>();
            TimeSpan stopHandover, killHandover, termExit;
            await using (var cluster = await NodeCluster.StartAsync(postgres.ConnectionString, nodes: 3, options.Hosts, hostCpu: 4 * perRound, hostMemoryMiB: 4 * perRound * 64,
                             running: 1))
            {
                for (var nodes = 1; nodes <= 3; nodes++)
                {
                    if (nodes > 1) await cluster.StartNodeAsync(nodes);
                    await cluster.WaitUntilSettledAsync(TimeSpan.FromSeconds(90));
                    // A cold node compiles each handler on first use (dynamic code generation): warm every node first.
                    await ThroughputAsync(cluster, nodes, 4 * nodes, options.Concurrency);
                    rates.Add(await ThroughputAsync(cluster, nodes, perRound, options.Concurrency));
                    Console.Error.WriteLine($"{nodes} node(s): {rates[^1].Created:F1} creates/s, {rates[^1].Running:F1} pods RUNNING/s");
                }
                (stopHandover, termExit) = await HandoverAsync(cluster, kill: false);
                await cluster.WaitUntilSettledAsync(TimeSpan.FromSeconds(90));
                (killHandover, _) = await HandoverAsync(cluster, kill: true);
            }

            var rolling = await CreateDatabaseAsync(postgres.ConnectionString, "kraud_rolling");
            RollingRestartReport report;
            await using (var cluster = await NodeCluster.StartAsync(rolling, nodes: 3, options.Hosts, hostCpu: options.Pods, hostMemoryMiB: options.Pods * 128))
                report = await RollingRestart.RunAsync(cluster, options.Pods, options.Concurrency, Console.Error.WriteLine);

            Console.WriteLine();
            Console.WriteLine($"Kraud nodes benchmark: Kraud.Api processes on one PostgreSQL, {options.Hosts} host runtime processes (simulated driver, 10 ms boots), " +
                              $"{perRound} pods per throughput round, {options.Concurrency} concurrent clients, {Environment.ProcessorCount} cores");
            Console.WriteLine();
            Console.WriteLine("| metric | Kraud | baseline |");
            Console.WriteLine("|---|---|---|");
            foreach (var (nodes, created, running) in rates)
                Console.WriteLine($"| {nodes} API node(s): creates/s, pods RUNNING/s | {created:F1} / {running:F1} | 1 node: {rates[0].Created:F1} / {rates[0].Running:F1} (flat expected on 2 cores) |");
            Console.WriteLine($"| scheduler handover, its node stopped (SIGTERM) | {stopHandover.TotalSeconds:F1} s (the node exited after {termExit.TotalSeconds:F1} s) | issue 18: < 10 s |");
            Console.WriteLine($"| scheduler handover, its node killed (SIGKILL) | {killHandover.TotalSeconds:F1} s | issue 18: < 10 s (stale after 5 s) |");
            Console.WriteLine($"| rolling restart: pods answered / listed / RUNNING | {report.Answered} / {report.Listed} / {report.Running} | {report.Requested} each |");
            Console.WriteLine($"| rolling restart: creates, until all RUNNING | {report.Creating.TotalSeconds:F1} s, {report.AllRunning.TotalSeconds:F1} s | - |");
            Console.WriteLine($"| rolling restart: connection retries, replayed answers, lease waits | {report.ConnectionRetries}, {report.Replays}, {report.WaitedForLease} | - |");
            Console.WriteLine($"| rolling restart: failed creates, replicas not booted once, duplicate microVMs | {report.Failures.Count}, {report.NotBootedOnce.Count}, " +
                              $"{report.DuplicateMicroVms.Count} ({report.MicroVmsOnHosts} microVMs on hosts) | 0, 0, 0 |");
            Console.WriteLine($"| rolling restart: audit chain valid, entries, last id, events not audited | {report.AuditValid}, {report.AuditEntries}, {report.AuditLastId}, " +
                              $"{report.EventsNotAudited} | true, gapless, 0 |");
            Console.WriteLine($"| rolling restart: dead letters, most scheduler holders at once, unfinished handovers | {report.DeadLetters.Count}, {report.MostSchedulerHolders}, " +
                              $"{report.SchedulerOverlaps.Count} | 0, 1, 0 |");
            Console.WriteLine($"| rolling restart: scheduler batches, unmarked placements, interleaved placements | {report.SchedulerBatches.Count}, {report.UnmarkedPlacements}, " +
                              $"{report.InterleavedPlacements.Count} | -, 0, 0 |");
            Console.WriteLine($"| rolling restart: scheduler held by | {string.Join(" -> ", report.SchedulerHolders)} | - |");
            Console.WriteLine($"| rolling restart: {report.Terminated} exit after SIGTERM (code) | {report.TerminatedExitAfter.TotalSeconds:F1} s ({report.TerminatedExitCode}) | - |");
            Console.WriteLine();
            foreach (var line in report.Failures.Concat(report.NotBootedOnce).Concat(report.DuplicateMicroVms).Concat(report.DeadLetters).Concat(report.SchedulerOverlaps)
                         .Concat(report.InterleavedPlacements).Take(20))
                Console.WriteLine($"  ! {line}");
            return 0;
        }
        finally
        {
            await postgres.StopAsync();
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A file still held by a child that is going away; the directory is in /tmp.
            }
        }
    }

    /// <summary>Creates <paramref name="pods"/> pods spread over the first <paramref name="nodes"/> nodes; answers creates/s and RUNNING/s from the first create.</summary>
    private static async Task<(int, double, double)> ThroughputAsync(NodeCluster cluster, int nodes, int pods, int concurrency)
    {
        var token = await cluster.CreateTenantAsync($"n{nodes.ToString(CultureInfo.InvariantCulture)}");
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < pods)
            {
                var answer = await cluster.PostAsync(cluster.Address(i % nodes + 1), token, "mutation($in: CreatePodInput!) { createPod(input: $in) { id } }",
                    new { @in = new { name = $"p{i.ToString(CultureInfo.InvariantCulture)}", image = NodeCluster.Image, cpu = 1, memoryMiB = 64, zone = cluster.Zone } });
                if (answer.HasErrors) throw new InvalidOperationException($"createPod failed: {answer.Body}");
            }
        })));
        var created = clock.Elapsed;
        while (true)
        {
            var listed = await cluster.PodsAsync(token);
            if (listed.Count == pods && listed.All(p => p.GetProperty("state").GetString() == "RUNNING")) break;
            if (clock.Elapsed > TimeSpan.FromMinutes(10)) throw new TimeoutException($"{pods} pods were not RUNNING after 10 minutes");
            await Task.Delay(250);
        }
        return (nodes, pods / created.TotalSeconds, pods / clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Stops (SIGTERM) or kills the node holding the scheduler, and times until /health of another node shows the
    /// scheduler on a live node; the node is started again afterwards. Answers the handover and how long the stop took.
    /// </summary>
    private static async Task<(TimeSpan Handover, TimeSpan Exit)> HandoverAsync(NodeCluster cluster, bool kill)
    {
        var holder = await cluster.SchedulerHolderAsync() ?? throw new InvalidOperationException("No node holds the scheduler.");
        var clock = Stopwatch.StartNew();
        var exit = TimeSpan.Zero;
        if (kill) await cluster.KillNodeAsync(holder);
        else
        {
            var stopping = cluster.TerminateNodeAsync(holder, TimeSpan.FromSeconds(60));
            // The handover is timed while the node is still exiting: it hands its roles back first.
            while (await cluster.SchedulerHolderAsync() is var now && (now is null || now == holder) && !stopping.IsCompleted) await Task.Delay(50);
            exit = (await stopping).Took;
        }
        while (await cluster.SchedulerHolderAsync() is var now && (now is null || now == holder))
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException("The scheduler was not handed over within 60 s.");
            await Task.Delay(50);
        }
        var handover = clock.Elapsed;
        Console.Error.WriteLine($"{(kill ? "SIGKILL" : "SIGTERM")} of {cluster.NodeName(holder)}: scheduler on node {await cluster.SchedulerHolderAsync()} after {handover.TotalSeconds:F1} s");
        await cluster.StartNodeAsync(holder);
        return (handover, exit);
    }

    private static async Task<string> CreateDatabaseAsync(string server, string name)
    {
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"create database {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }
}
