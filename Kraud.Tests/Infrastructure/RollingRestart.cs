using System.Collections.Concurrent;
using System.Diagnostics;
using Kraud.Api.Health;
using Npgsql;

namespace Kraud.Tests.Infrastructure;

/// <summary>What a rolling restart under load left behind: every fact the issue names, measured, for a spec to assert and the benchmark to print.</summary>
public sealed record RollingRestartReport
{
    public required int Requested { get; init; }

    /// <summary>Distinct pod ids the creates answered (a replayed answer names the pod its first attempt created).</summary>
    public required int Answered { get; init; }

    /// <summary>Creates that ended with an error answer (not a connection error, which is retried).</summary>
    public required IReadOnlyList<string> Failures { get; init; }

    public required int Listed { get; init; }
    public required int Running { get; init; }

    /// <summary>Pod names the tenant's list shows more than once.</summary>
    public required IReadOnlyList<string> DuplicateNames { get; init; }

    public required TimeSpan Creating { get; init; }

    /// <summary>From the first create until every pod was RUNNING.</summary>
    public required TimeSpan AllRunning { get; init; }

    public required int ConnectionRetries { get; init; }
    public required int Replays { get; init; }

    /// <summary>Retries answered CONFLICT "still running": the first attempt's node died holding the key's lease.</summary>
    public required int WaitedForLease { get; init; }

    /// <summary>Pods whose stream placed, booted or ran a replica other than exactly once, or lost, replaced or evicted one.</summary>
    public required IReadOnlyList<string> NotBootedOnce { get; init; }

    /// <summary>MicroVMs of the run that some host lists more than once or that several hosts list.</summary>
    public required IReadOnlyList<string> DuplicateMicroVms { get; init; }

    /// <summary>MicroVMs of the run the hosts list in all.</summary>
    public required int MicroVmsOnHosts { get; init; }

    public required bool AuditValid { get; init; }
    public required long AuditEntries { get; init; }
    public required long AuditLastId { get; init; }

    /// <summary>Empty when the async projections caught up with the log; otherwise where they stood 150 s after every pod ran.</summary>
    public required string ProjectionsLate { get; init; }

    /// <summary>
    /// The database transactions that stayed open 10 s or longer during the run (the longest first): Marten's high water
    /// mark does not pass a gap in the sequence while a transaction older than the gap could still fill it.
    /// </summary>
    public required IReadOnlyList<string> LongTransactions { get; init; }

    /// <summary>Events of the log that no audit entry covers.</summary>
    public required long EventsNotAudited { get; init; }

    /// <summary>Rows of every wolverine_dead_letters table on the database (the nodes' and the host runtimes').</summary>
    public required IReadOnlyList<string> DeadLetters { get; init; }

    /// <summary>The most nodes /health showed holding the scheduler at one instant (polled every 100 ms).</summary>
    public required int MostSchedulerHolders { get; init; }

    /// <summary>
    /// Handovers of the scheduler that the log does not complete: a node took it while the node before it neither stopped
    /// it, nor stopped, nor was ejected or killed, anywhere in the log after its own start.
    /// </summary>
    public required IReadOnlyList<string> SchedulerOverlaps { get; init; }

    /// <summary>
    /// Instants at which the log, replayed in the order of its timestamps, has two holders. Wolverine writes its lines
    /// through a batching queue, stamped by the database when they are inserted, not when the agent started or stopped:
    /// shown, not asserted (the placements below are what show the scheduler ran on one node at a time).
    /// </summary>
    public required IReadOnlyList<string> OverlapsByLogTime { get; init; }

    /// <summary>The scheduler's batches as the mark on their placements shows them (<c>SchedulerFence</c>), in the order they began.</summary>
    public required IReadOnlyList<SchedulerBatch> SchedulerBatches { get; init; }

    /// <summary>Placements of the run without a scheduler's mark (a batch that did not pass the fence placed them).</summary>
    public required long UnmarkedPlacements { get; init; }

    /// <summary>
    /// Where the nodes that placed, in the order their batches began, do not follow the order in which the log gives them
    /// the scheduler (a node placing again after another took over, or placing without having been given it).
    /// </summary>
    public required IReadOnlyList<string> InterleavedPlacements { get; init; }

    /// <summary>The handover log /health showed during the run (merged from every poll).</summary>
    public required IReadOnlyList<Handover> Handovers { get; init; }

    public required string Killed { get; init; }
    public required string Terminated { get; init; }
    public required TimeSpan TerminatedExitAfter { get; init; }
    public required int TerminatedExitCode { get; init; }

    /// <summary>Nodes that took the scheduler during the run, in order.</summary>
    public required IReadOnlyList<string> SchedulerHolders { get; init; }
}

/// <summary>A scheduler batch: the node that ran it, the database's time when it began, and the replicas it placed.</summary>
public sealed record SchedulerBatch(string Node, DateTimeOffset Began, string Mark, long Placements);

/// <summary>
/// The issue's rolling restart: a client creates pods spread over the cluster's nodes, retrying a request that lost its
/// connection with the same Idempotency-Key on the next node; the node holding the scheduler is SIGKILLed at 30 % of
/// the creates and started again at 60 %, and at 80 % the node then holding the scheduler (another one) gets SIGTERM.
/// Afterwards it gathers what the pods, the hosts, the audit chain, the dead-letter tables and /health show.
/// </summary>
public static class RollingRestart
{
    private const string CreatePod = "mutation($in: CreatePodInput!) { createPod(input: $in) { id } }";

    public static async Task<RollingRestartReport> RunAsync(NodeCluster cluster, int pods, int concurrency, Action<string> log)
    {
        var token = await cluster.CreateTenantAsync("roll");
        using var watching = new CancellationTokenSource();
        var watch = new ClusterWatch(cluster);
        var watched = watch.RunAsync(watching.Token);
        var transactions = new LongTransactionWatch(cluster.ConnectionString);
        var sampled = transactions.RunAsync(watching.Token);
        var killed = await SchedulerNodeAsync(cluster, exceptNumber: 0);
        var schedulerHolders = new List<string> { cluster.NodeName(killed) };

        var created = new string?[pods];
        var failures = new ConcurrentQueue<string>();
        int next = -1, done = 0, connectionRetries = 0, replays = 0, waitedForLease = 0;
        Task? restart = null;
        var killedAt = DateTimeOffset.MaxValue;
        Task<(int Number, TimeSpan Took, int ExitCode)>? terminate = null;
        var clock = Stopwatch.StartNew();

        async Task CreateAsync(int i)
        {
            var key = Guid.NewGuid().ToString();
            var preferred = i % cluster.NodeCount + 1;
            // A namespace's VPC is an IPv4 /23 (509 microVMs): a thousand pods go into namespaces of 250.
            var input = new
            {
                name = $"roll-{i.ToString(CultureInfo.InvariantCulture)}", @namespace = $"roll-{(i / 250).ToString(CultureInfo.InvariantCulture)}",
                image = NodeCluster.Image, cpu = 1, memoryMiB = 64, replicas = 1, zone = cluster.Zone,
            };
            var giveUp = Stopwatch.StartNew();
            while (true)
            {
                if (giveUp.Elapsed > TimeSpan.FromMinutes(3))
                {
                    failures.Enqueue($"pod {i}: no node answered within 3 minutes");
                    return;
                }
                // The client knows the nodes' addresses, not whether they are up: a dead one refuses, and it tries the next.
                var number = preferred;
                var url = cluster.Address(number);
                HttpGqlAnswer answer;
                try
                {
                    answer = await cluster.PostAsync(url, token, CreatePod, new { @in = input }, key);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    // The connection broke (the node died or is stopping): the same request, the same key, the next node.
                    Interlocked.Increment(ref connectionRetries);
                    preferred = number % cluster.NodeCount + 1;
                    await Task.Delay(100);
                    continue;
                }
                if (answer is { Status: 409, Code: "CONFLICT" } && answer.Body.Contains("still running", StringComparison.Ordinal))
                {
                    // The first attempt's node died while it held the key: its lease runs out, then the retry runs it.
                    Interlocked.Increment(ref waitedForLease);
                    await Task.Delay(500);
                    continue;
                }
                if (answer.Status >= 500)
                {
                    Interlocked.Increment(ref connectionRetries);
                    preferred = number % cluster.NodeCount + 1;
                    await Task.Delay(100);
                    continue;
                }
                if (answer.HasErrors)
                {
                    failures.Enqueue($"pod {i} on node {number}: {answer.Status} {answer.Body}");
                    return;
                }
                if (answer.Replayed) Interlocked.Increment(ref replays);
                created[i] = answer.Data.GetProperty("createPod").GetProperty("id").GetString();
                return;
            }
        }

        async Task WorkAsync()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < pods)
            {
                await CreateAsync(i);
                var count = Interlocked.Increment(ref done);
                if (count == Math.Max(1, pods * 3 / 10))
                {
                    log($"{clock.Elapsed.TotalSeconds:F1} s, {count} created: SIGKILL {cluster.NodeName(killed)} (it holds the scheduler)");
                    await cluster.KillNodeAsync(killed);
                    killedAt = DateTimeOffset.UtcNow;
                }
                else if (count == Math.Max(2, pods * 6 / 10))
                {
                    log($"{clock.Elapsed.TotalSeconds:F1} s, {count} created: starting {cluster.NodeName(killed)} again");
                    restart = cluster.StartNodeAsync(killed);
                }
                else if (count == Math.Max(3, pods * 8 / 10))
                {
                    var number = await SchedulerNodeAsync(cluster, exceptNumber: killed);
                    log($"{clock.Elapsed.TotalSeconds:F1} s, {count} created: SIGTERM {cluster.NodeName(number)}");
                    terminate = TerminateAsync(cluster, number);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(WorkAsync)));
        var creating = clock.Elapsed;
        log($"{creating.TotalSeconds:F1} s: {pods} creates answered ({connectionRetries} connection retries, {replays} replayed answers, {waitedForLease} waits for a lease)");
        if (restart is not null) await restart;
        var (terminated, exitAfter, exitCode) = terminate is null ? (0, TimeSpan.Zero, -1) : await terminate;

        // Placement and boots run on after the answers: wait (outside any node's Wolverine, so by polling) until all run.
        var ids = created.OfType<string>().ToHashSet();
        // It waits as long as pods keep coming up (a 2-core machine runs a few per second), and gives up after a minute without one.
        var listed = await cluster.PodsAsync(token);
        var running = 0;
        var progressed = DateTime.UtcNow;
        while (!(listed.Count >= pods && listed.All(p => p.GetProperty("state").GetString() == "RUNNING")) && DateTime.UtcNow - progressed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(1000);
            listed = await cluster.PodsAsync(token);
            var now = listed.Count(p => p.GetProperty("state").GetString() == "RUNNING");
            if (now > running) (running, progressed) = (now, DateTime.UtcNow);
        }
        var allRunning = clock.Elapsed;
        log($"{allRunning.TotalSeconds:F1} s: {listed.Count(p => p.GetProperty("state").GetString() == "RUNNING")} of {listed.Count} pods RUNNING");

        var projectionsLate = await WaitForProjectionsAsync(cluster);
        await watching.CancelAsync();
        await watched;
        await sampled;

        var hostVms = (await cluster.QueryAsync(NodeCluster.OperatorToken, "{ hosts { name microVms { id podId } } }")).GetProperty("hosts").EnumerateArray()
            .SelectMany(h => h.GetProperty("microVms").EnumerateArray().Select(v => (Host: h.GetProperty("name").GetString()!, Vm: v.GetProperty("id").GetString()!,
                Pod: v.GetProperty("podId").GetString()!)))
            .Where(v => ids.Contains(v.Pod)).ToList();
        var audit = (await cluster.QueryAsync(NodeCluster.OperatorToken, "{ verifyAuditChain { valid entries firstBrokenSeq } }")).GetProperty("verifyAuditChain");
        await using var db = new NpgsqlConnection(cluster.ConnectionString);
        await db.OpenAsync();
        var (entries, lastId) = await AuditRowsAsync(db);
        schedulerHolders.AddRange(watch.Handovers.Where(h => h is { Role: "scheduler", Change: "started" } && h.At >= watch.Since).Select(h => h.Node));
        var handovers = watch.Handovers.Append(new Handover(killedAt, cluster.NodeName(killed), "killed", "")).ToList();
        var (batches, unmarked) = await SchedulerBatchesAsync(db, ids);
        return new RollingRestartReport
        {
            Requested = pods,
            Answered = ids.Count,
            Failures = failures.ToList(),
            Listed = listed.Count,
            Running = listed.Count(p => p.GetProperty("state").GetString() == "RUNNING"),
            DuplicateNames = listed.GroupBy(p => p.GetProperty("name").GetString()!).Where(g => g.Count() > 1).Select(g => g.Key).ToList(),
            Creating = creating,
            AllRunning = allRunning,
            ConnectionRetries = connectionRetries,
            Replays = replays,
            WaitedForLease = waitedForLease,
            NotBootedOnce = await NotBootedOnceAsync(db, ids),
            DuplicateMicroVms = hostVms.GroupBy(v => v.Vm).Where(g => g.Count() > 1).Select(g => $"{g.Key} on {string.Join(", ", g.Select(v => v.Host))}").ToList(),
            MicroVmsOnHosts = hostVms.Count,
            AuditValid = audit.GetProperty("valid").GetBoolean(),
            AuditEntries = entries,
            AuditLastId = lastId,
            ProjectionsLate = projectionsLate,
            LongTransactions = transactions.Longest(),
            EventsNotAudited = await db.ScalarAsync(
                "select count(*) from kraud.mt_events e where not exists (select 1 from kraud.mt_doc_auditentry a where (a.data->>'EventSeq')::bigint = e.seq_id)"),
            DeadLetters = await DeadLettersAsync(db),
            MostSchedulerHolders = watch.MostSchedulerHolders,
            SchedulerOverlaps = UnfinishedHandovers(handovers),
            OverlapsByLogTime = SchedulerOverlaps(handovers),
            SchedulerBatches = batches,
            UnmarkedPlacements = unmarked,
            InterleavedPlacements = InterleavedPlacements(batches, handovers),
            Handovers = watch.Handovers,
            Killed = cluster.NodeName(killed),
            Terminated = terminated == 0 ? "" : cluster.NodeName(terminated),
            TerminatedExitAfter = exitAfter,
            TerminatedExitCode = exitCode,
            SchedulerHolders = schedulerHolders,
        };
    }

    private static async Task<(int, TimeSpan, int)> TerminateAsync(NodeCluster cluster, int number)
    {
        var (took, code) = await cluster.TerminateNodeAsync(number, TimeSpan.FromSeconds(60));
        return (number, took, code);
    }

    /// <summary>
    /// The number of the node that holds the scheduler now, other than <paramref name="exceptNumber"/>: waits up to 15 s for
    /// one (the scheduler may be between nodes); any other serving node if none does by then.
    /// </summary>
    private static async Task<int> SchedulerNodeAsync(NodeCluster cluster, int exceptNumber)
    {
        var by = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var serving = cluster.Serving;
            var number = await cluster.SchedulerHolderAsync() ?? 0;
            if (number != 0 && number != exceptNumber && serving.Any(s => s.Number == number)) return number;
            if (DateTime.UtcNow > by) return serving.First(s => s.Number != exceptNumber).Number;
            await Task.Delay(200);
        }
    }

    /// <summary>
    /// Until every async projection (the audit chain among them) has caught up with the event log; if they have not within
    /// 150 s (beyond the minute after which the daemon skips a hole in the sequence), what /health and the progression
    /// table say: a projection that stalls is the finding, and this is its evidence.
    /// </summary>
    private static async Task<string> WaitForProjectionsAsync(NodeCluster cluster)
    {
        var by = DateTime.UtcNow + TimeSpan.FromSeconds(150);
        while (true)
        {
            var health = await cluster.SomeHealthAsync();
            if (health.Projections.Count > 0 && health.Projections.All(p => p.Behind == 0)) return "";
            if (DateTime.UtcNow > by)
            {
                await using var db = new NpgsqlConnection(cluster.ConnectionString);
                await db.OpenAsync();
                await using var cmd = new NpgsqlCommand("select name, last_seq_id, last_updated from kraud.mt_event_progression order by name", db);
                await using var reader = await cmd.ExecuteReaderAsync();
                var rows = new List<string>();
                while (await reader.ReadAsync()) rows.Add($"{reader.GetString(0)} {reader.GetInt64(1)} {reader.GetValue(2)}");
                return $"/health of {health.Node} at {DateTime.UtcNow:O}: high water {health.HighWaterMark}, " +
                       $"{string.Join(", ", health.Projections.Select(p => $"{p.Name} at {p.Position}, {p.Behind} behind"))}; " +
                       $"nodes {string.Join("; ", health.Nodes?.Select(n => $"{n.Id} [{string.Join(" ", n.Roles)}]") ?? [])}\nprogression:\n{string.Join("\n", rows)}";
            }
            await Task.Delay(500);
        }
    }

    private static async Task<(long Entries, long LastId)> AuditRowsAsync(NpgsqlConnection db)
    {
        await using var cmd = new NpgsqlCommand("select count(*), coalesce(max(id), 0) from kraud.mt_doc_auditentry", db);
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private static readonly string[] ReplicaTroubles =
        ["pod_replica_lost", "pod_replica_vanished", "pod_replica_replaced", "pod_replica_evicted", "pod_replica_failed"];

    /// <summary>Each pod has one replica: placed once, booted at most once, running once, and nothing lost, replaced or evicted on the way.</summary>
    private static async Task<IReadOnlyList<string>> NotBootedOnceAsync(NpgsqlConnection db, IReadOnlySet<string> pods)
    {
        await using var cmd = new NpgsqlCommand(
            "select stream_id, type, count(*) from kraud.mt_events where stream_id = any(@ids) and type like 'pod_replica_%' group by stream_id, type", db);
        cmd.Parameters.AddWithValue("ids", pods.Select(Guid.Parse).ToArray());
        var counts = new Dictionary<Guid, Dictionary<string, long>>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var stream = reader.GetGuid(0);
                if (!counts.TryGetValue(stream, out var types)) counts[stream] = types = [];
                types[reader.GetString(1)] = reader.GetInt64(2);
            }
        }
        var wrong = new List<string>();
        foreach (var pod in pods.Select(Guid.Parse))
        {
            var types = counts.GetValueOrDefault(pod) ?? [];
            // BOOTING is recorded only when the host's boot-started report comes before its booted one (under load the two
            // can arrive together): at most once, then.
            if (types.GetValueOrDefault("pod_replica_scheduled") != 1 || types.GetValueOrDefault("pod_replica_booting") > 1
                || types.GetValueOrDefault("pod_replica_running") != 1 || ReplicaTroubles.Any(types.ContainsKey))
                wrong.Add($"{pod}: {string.Join(", ", types.Select(t => $"{t.Key} {t.Value}"))}");
        }
        return wrong;
    }

    /// <summary>Every row of every wolverine_dead_letters table (the API nodes' schema and each host runtime's).</summary>
    private static async Task<IReadOnlyList<string>> DeadLettersAsync(NpgsqlConnection db)
    {
        var schemas = new List<string>();
        await using (var cmd = new NpgsqlCommand("select table_schema from information_schema.tables where table_name = 'wolverine_dead_letters'", db))
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync()) schemas.Add(reader.GetString(0));
        var rows = new List<string>();
        foreach (var schema in schemas)
        {
            await using var cmd = new NpgsqlCommand(
                $"select row_to_json(d)::text from (select message_type, exception_type, exception_message from \"{schema}\".wolverine_dead_letters) d", db);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) rows.Add($"{schema}: {reader.GetString(0)}");
        }
        return rows;
    }

    /// <summary>The run's placements grouped by the scheduler's mark on them (its node and the time its batch began), in the order the batches began.</summary>
    private static async Task<(IReadOnlyList<SchedulerBatch> Batches, long Unmarked)> SchedulerBatchesAsync(NpgsqlConnection db, IReadOnlySet<string> pods)
    {
        await using var cmd = new NpgsqlCommand(
            $"select headers ->> '{Kraud.Api.Common.SchedulerFence.Header}', count(*) from kraud.mt_events where stream_id = any(@ids) and type = 'pod_replica_scheduled' group by 1", db);
        cmd.Parameters.AddWithValue("ids", pods.Select(Guid.Parse).ToArray());
        var batches = new List<SchedulerBatch>();
        long unmarked = 0;
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            if (reader.IsDBNull(0))
            {
                unmarked += reader.GetInt64(1);
                continue;
            }
            var mark = reader.GetString(0);
            var parts = mark.Split(' ');
            batches.Add(new SchedulerBatch(parts[0], DateTimeOffset.Parse(parts[1], CultureInfo.InvariantCulture), mark, reader.GetInt64(1)));
        }
        return (batches.OrderBy(b => b.Began).ToList(), unmarked);
    }

    /// <summary>
    /// The nodes that placed, one entry per run of batches of one node in the order the batches began, must appear in
    /// this order among the nodes the log gives the scheduler to (in the log's order). A node that placed after another
    /// took over, or that placed without being given the scheduler, breaks it.
    /// </summary>
    public static IReadOnlyList<string> InterleavedPlacements(IReadOnlyList<SchedulerBatch> batches, IEnumerable<Handover> log)
    {
        var runs = new List<SchedulerBatch>();
        foreach (var batch in batches)
            if (runs.Count == 0 || runs[^1].Node != batch.Node) runs.Add(batch);
        var holders = log.Where(h => h is { Role: "scheduler", Change: "started" }).OrderBy(h => h.At).Select(h => h.Node).ToList();
        var next = 0;
        foreach (var run in runs)
        {
            next = holders.IndexOf(run.Node, next);
            if (next < 0)
                return [$"{run.Node} placed from {run.Began:O} ({run.Mark}), out of the order the log gave the scheduler: placed by " +
                        $"{string.Join(" → ", runs.Select(r => r.Node))}; held by {string.Join(" → ", holders)}"];
        }
        return [];
    }

    /// <summary>
    /// Every handover the log shows is complete: each time a node took the scheduler from another, that other node let it
    /// go in the log (it stopped the scheduler, stopped, was ejected or was killed; one such line ends one tenure). The
    /// lines are counted per node, not ordered: Wolverine writes them through a batching queue, stamped when inserted,
    /// and Kraud's own "stopped" is written when the node begins to stop (see <see cref="SchedulerOverlaps"/>).
    /// </summary>
    public static IReadOnlyList<string> UnfinishedHandovers(IEnumerable<Handover> log)
    {
        var lines = log.OrderBy(h => h.At).ToList();
        var handedOver = new Dictionary<string, int>();
        string? holder = null;
        foreach (var taken in lines.Where(h => h is { Role: "scheduler", Change: "started" }))
        {
            if (holder is not null && holder != taken.Node) handedOver[holder] = handedOver.GetValueOrDefault(holder) + 1;
            holder = taken.Node;
        }
        return handedOver
            .Select(n => (Node: n.Key, Tenures: n.Value, Releases: lines.Count(h => h.Node == n.Key
                && (h is { Role: "scheduler", Change: "stopped" } || h.Role == "" && h.Change is "stopped" or "ejected" or "killed"))))
            .Where(n => n.Releases < n.Tenures)
            .Select(n => $"{n.Node} handed the scheduler on {n.Tenures} times, and the log has it let go {n.Releases} times")
            .ToList();
    }

    /// <summary>
    /// Replays the handover log: a role started on a node adds it to the holders, stopped removes it, and a node that
    /// stopped, was ejected or was killed (the run adds the instant its SIGKILL returned: a dead process holds nothing, but
    /// the log says so only when the leader ejects it, which may be logged just after the role's new holder started) holds
    /// nothing any more. Answers every instant at which two nodes held the scheduler.
    /// </summary>
    public static IReadOnlyList<string> SchedulerOverlaps(IEnumerable<Handover> log)
    {
        var holders = new HashSet<string>();
        var overlaps = new List<string>();
        foreach (var h in log.OrderBy(h => h.At))
        {
            if (h is { Role: "scheduler", Change: "started" }) holders.Add(h.Node);
            else if (h is { Role: "scheduler", Change: "stopped" } || (h.Role == "" && h.Change is "stopped" or "ejected" or "killed")) holders.Remove(h.Node);
            if (holders.Count > 1) overlaps.Add($"{h.At:O}: {string.Join(", ", holders)}");
        }
        return overlaps;
    }

    /// <summary>Samples pg_stat_activity each second for transactions open 10 s or longer, and keeps each one's longest age.</summary>
    private sealed class LongTransactionWatch(string connectionString)
    {
        private readonly Dictionary<string, double> _seen = [];

        public IReadOnlyList<string> Longest() => _seen.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Value:F0} s: {kv.Key}").ToList();

        public async Task RunAsync(CancellationToken ct)
        {
            try
            {
                await using var db = new NpgsqlConnection(connectionString);
                await db.OpenAsync(ct);
                while (!ct.IsCancellationRequested)
                {
                    await using (var cmd = new NpgsqlCommand(
                                     "select pid, application_name, state, left(query, 160), extract(epoch from now() - xact_start)::float8 from pg_stat_activity " +
                                     "where datname = current_database() and pid <> pg_backend_pid() and xact_start < now() - interval '10 seconds'", db))
                    await using (var reader = await cmd.ExecuteReaderAsync(ct))
                        while (await reader.ReadAsync(ct))
                        {
                            var key = $"pid {reader.GetInt32(0)} [{(reader.IsDBNull(1) ? "" : reader.GetString(1))}] {(reader.IsDBNull(2) ? "" : reader.GetString(2))}: {(reader.IsDBNull(3) ? "" : reader.GetString(3))}";
                            _seen[key] = Math.Max(_seen.GetValueOrDefault(key), reader.GetDouble(4));
                        }
                    await Task.Delay(1000, ct);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>Polls /health of a serving node: who holds the scheduler at each instant, and the handover log merged over the run.</summary>
    private sealed class ClusterWatch(NodeCluster cluster)
    {
        private readonly HashSet<Handover> _log = [];

        public DateTimeOffset Since { get; } = DateTimeOffset.UtcNow;

        public int MostSchedulerHolders { get; private set; }

        public IReadOnlyList<Handover> Handovers => _log.OrderBy(h => h.At).ToList();

        public async Task RunAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    if (cluster.Serving.FirstOrDefault() is { Url: { } url })
                    {
                        var health = await cluster.HealthAsync(url, ct);
                        MostSchedulerHolders = Math.Max(MostSchedulerHolders, health.Nodes!.Count(n => n.Roles.Contains("scheduler")));
                        foreach (var h in health.Handovers!) _log.Add(h);
                    }
                    await Task.Delay(100, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (HttpRequestException)
                {
                    // The node it asked died under it: the next poll asks another.
                }
            }
        }
    }
}
