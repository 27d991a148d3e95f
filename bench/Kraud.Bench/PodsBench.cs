using System.Collections.Concurrent;
using System.Diagnostics;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Npgsql;

namespace Kraud.Bench;

/// <summary>
/// Pods created through GraphQL until RUNNING on the simulated fleet (zero boot delay): throughput, create latency,
/// create-to-RUNNING, the scheduler's placement rate, and where the time goes.
/// </summary>
public static class PodsBench
{
    public static async Task<int> RunAsync(Options options)
    {
        if (options.Existing != 0 && options.Existing <= options.Pods)
        {
            Console.Error.WriteLine($"--existing ({options.Existing}) counts the first run's {options.Pods} pods: it must be more than --pods");
            return 2;
        }
        using var messages = new MessageCounts();
        await using var app = await BenchApp.StartAsync(options);

        // Warm-up: the first call of each handler compiles it (dynamic code generation); that is not what we measure.
        for (var i = 0; i < 3; i++)
        {
            var id = await app.CreatePodAsync($"warm{i}");
            await BenchApp.WaitUntil(async () => { await using var s = app.Store.QuerySession(); return (await s.LoadAsync<PodView>(id))?.State == PodState.Running; }, "warm-up pod runs");
        }

        // Before the pods, so that its scratch table and its commits are gone from what the pods are charged with.
        var ceiling = await PgbenchCeiling.MeasureAsync(app, options.Concurrency);
        Console.Error.WriteLine($"pgbench ceiling: {ceiling.CommitsPerSecond:F0} commits/s ({ceiling.Clients} clients, {ceiling.Seconds} s)");

        messages.Take();
        var empty = await MeasureAsync(app, options, "pod", 0, TimeSpan.FromMinutes(10));
        var emptyMessages = messages.Take();
        Run? grown = null;
        var fillSeconds = 0.0;
        if (options.Existing > 0)
        {
            // The fleet grows to --existing pods RUNNING (the measured run's pods count among them) as fast as the platform
            // takes them, through the same GraphQL path, then the same run is measured again on top of it.
            var fill = options.Existing - options.Pods;
            var filling = Stopwatch.StartNew();
            var filled = await MeasureAsync(app, options with { Pods = fill }, "fill", options.Pods, TimeSpan.FromSeconds(Math.Max(600, fill)), pollEvery: TimeSpan.FromSeconds(1));
            fillSeconds = filling.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"filled: {fill} pods RUNNING in {fillSeconds:F0} s ({filled.Failures} failed creates); {options.Existing} pods on {options.Hosts} hosts");
            messages.Take();
            grown = await MeasureAsync(app, options, "grown", options.Existing, TimeSpan.FromMinutes(10));
        }

        // The bench hosts the API in-process (with the simulated fleet's host runtimes and the bench's own clients), so these
        // are the figures of that one process: an upper bound of the API's own.
        var workingSet = Environment.WorkingSet;
        using var self = Process.GetCurrentProcess();
        var peakWorkingSet = self.PeakWorkingSet64;
        var heap = GC.GetGCMemoryInfo().HeapSizeBytes;
        var live = GC.GetTotalMemory(forceFullCollection: true);

        Console.WriteLine();
        Console.WriteLine($"Kraud pods benchmark: {options.Pods} pods x {options.Replicas} replica(s), {options.Concurrency} concurrent GraphQL clients, " +
                          $"{options.Hosts} simulated compute hosts, boot delay 0, PostgreSQL {(options.Durable ? "durable (fsync on)" : "fsync off")}, " +
                          $"{Environment.ProcessorCount} cores" + (options.Existing > 0 ? $"; then again with {options.Existing} pods RUNNING" : ""));
        Console.WriteLine();
        Console.WriteLine("| metric | Kraud | baseline (Kubernetes SLO / scheduler target) |");
        Console.WriteLine("|---|---|---|");
        PrintRows(empty, options, "");
        var commitsPerSecond = empty.RunningPerSecond * empty.Work.Commits / options.Pods;
        Console.WriteLine($"| pgbench ceiling, same PostgreSQL, before the pods (single-row durable inserts, {ceiling.Clients} clients, {ceiling.Seconds} s) | " +
                          $"{ceiling.CommitsPerSecond:F0} commits/s | - |");
        Console.WriteLine($"| pods RUNNING per second / pgbench commits per second | {empty.RunningPerSecond / ceiling.CommitsPerSecond:F4} | - |");
        Console.WriteLine($"| commits per second the pods took (RUNNING/s x commits per pod) / pgbench ceiling | {commitsPerSecond:F0} / {ceiling.CommitsPerSecond:F0} = " +
                          $"{commitsPerSecond / ceiling.CommitsPerSecond:F2} | 1 at most |");
        if (grown is not null)
        {
            Console.WriteLine($"| pods brought to RUNNING before the second run (same GraphQL path, {options.Concurrency} clients) | " +
                              $"{options.Existing - options.Pods} in {fillSeconds:F0} s ({(options.Existing - options.Pods) / fillSeconds:F1}/s) | - |");
            PrintRows(grown, options, $" with {options.Existing} pods RUNNING on {options.Hosts} hosts");
            Console.WriteLine($"| placements per second with {options.Existing} pods RUNNING / on the empty fleet | {grown.PlacedPerSecond:F1} / {empty.PlacedPerSecond:F1} = " +
                              $"{grown.PlacedPerSecond / empty.PlacedPerSecond:F2} | >= 0.8 (issue 17) |");
        }
        var pods = options.Existing > 0 ? options.Existing + options.Pods : options.Pods;
        Console.WriteLine($"| process working set after {pods} pods (API, simulated fleet and bench in one process): now / peak | " +
                          $"{workingSet / 1048576.0:F0} / {peakWorkingSet / 1048576.0:F0} MiB | reported (issue 17) |");
        Console.WriteLine($"| GC heap after {pods} pods: heap size / live after a full collection | {heap / 1048576.0:F0} / {live / 1048576.0:F0} MiB | reported (issue 17) |");
        Console.WriteLine();
        (Run Run, string Title)[] runs = grown is null ? [(empty, "")] : [(empty, ", empty fleet"), (grown, $", {options.Existing} pods RUNNING")];
        foreach (var (run, title) in runs)
        {
            Console.WriteLine($"| phase (commit to commit{title}) | p50 | p99 |");
            Console.WriteLine("|---|---|---|");
            foreach (var (name, p50, p99) in run.Phases) Console.WriteLine($"| {name} | {p50:F0} ms | {p99:F0} ms |");
            Console.WriteLine();
        }
        Console.WriteLine("| message handled (Wolverine, empty fleet's run) | per pod |");
        Console.WriteLine("|---|---|");
        foreach (var (type, count) in emptyMessages) Console.WriteLine($"| {type} | {count / (double)options.Pods:F2} |");
        Console.WriteLine();
        foreach (var (run, title) in runs)
        {
            foreach (var (order, statements) in new[] { ("most frequent", run.Top), ("most database time", run.Slowest) })
            {
                Console.WriteLine($"| statement ({order}{title}) | calls per pod | ms per pod |");
                Console.WriteLine("|---|---|---|");
                foreach (var (calls, ms, query) in statements)
                    Console.WriteLine($"| {(query.Length > 110 ? query[..110] + "…" : query).Replace("|", "\\|", StringComparison.Ordinal)} | {calls / (double)options.Pods:F2} | {ms / options.Pods:F2} |");
                Console.WriteLine();
            }
        }
        return empty.Failures == 0 && (grown?.Failures ?? 0) == 0 ? 0 : 1;
    }

    private static void PrintRows(Run run, Options options, string suffix)
    {
        var createMs = run.CreateMs;
        var runMs = run.RunMs;
        Console.WriteLine($"| pods RUNNING per second (end to end){suffix} | {run.RunningPerSecond:F1} | - |");
        Console.WriteLine($"| pods placed per second (scheduler){suffix} | {run.PlacedPerSecond:F1} | >= 100 pods/s |");
        Console.WriteLine($"| createPod accepted per second{suffix} | {options.Pods / run.CreateSeconds:F1} | - |");
        Console.WriteLine($"| createPod latency p50 / p90 / p99{suffix} | {Stats.P(createMs, 50):F0} / {Stats.P(createMs, 90):F0} / {Stats.P(createMs, 99):F0} ms | API call latency p99 <= 1000 ms |");
        Console.WriteLine($"| create -> RUNNING p50 / p90 / p99{suffix} | {Stats.P(runMs, 50):F0} / {Stats.P(runMs, 90):F0} / {Stats.P(runMs, 99):F0} ms | pod startup p99 <= 5000 ms |");
        Console.WriteLine($"| failed creates{suffix} | {run.Failures} | 0 |");
        Console.WriteLine($"| pods that exist / answered as created{suffix} | {run.PodsThere} / {run.Answered} | equal |");
        Console.WriteLine($"| commits per pod (whole database, idle polling included){suffix} | {run.Work.Commits / (double)options.Pods:F1} | - |");
        Console.WriteLine($"| statements per pod (pg_stat_statements; round trips at most){suffix} | {run.Work.Statements / (double)options.Pods:F1} | - |");
        Console.WriteLine($"| rows fetched + written per pod (whole database){suffix} | {run.Work.Rows / (double)options.Pods:F0} | - |");
        Console.WriteLine($"| CPU per pod: API process / PostgreSQL{suffix} | {run.Work.ApiCpuSeconds * 1000 / options.Pods:F1} / {run.Work.PostgresCpuSeconds * 1000 / options.Pods:F1} ms | - |");
    }

    private sealed record Run(int Failures, int Answered, int PodsThere, double CreateSeconds, double TotalSeconds, List<double> CreateMs, List<double> RunMs, Work Work,
        List<(long Calls, double TotalMs, string Query)> Top, List<(long Calls, double TotalMs, string Query)> Slowest, double PlacedPerSecond,
        List<(string, double, double)> Phases)
    {
        public double RunningPerSecond => RunMs.Count / TotalSeconds;
    }

    /// <summary>
    /// Creates options.Pods pods named prefix + index (indexes from <paramref name="first"/>, which also picks their namespaces)
    /// from options.Concurrency clients and waits until every one runs.
    /// </summary>
    private static async Task<Run> MeasureAsync(BenchApp app, Options options, string prefix, int first, TimeSpan timeout, TimeSpan? pollEvery = null)
    {
        var before = await DatabaseWorkAsync(app, start: true);
        var created = new ConcurrentDictionary<Guid, (long Started, double CreateMs)>();
        var running = new ConcurrentDictionary<Guid, double>();
        var clock = Stopwatch.StartNew();
        var next = -1;
        var failures = 0;

        async Task Creator()
        {
            while (true)
            {
                var n = Interlocked.Increment(ref next);
                if (n >= options.Pods) return;
                var started = clock.ElapsedTicks;
                try
                {
                    var id = await app.CreatePodAsync($"{prefix}{first + n:00000}", options.Replicas, BenchApp.NamespaceFor(first + n, options.Replicas));
                    created[id] = (started, Stats.Ms(clock.ElapsedTicks - started));
                }
                catch (Exception e)
                {
                    Interlocked.Increment(ref failures);
                    Console.Error.WriteLine($"createPod failed: {e.Message}");
                }
            }
        }

        // One query per round for every pod not yet RUNNING: the resolution of "time to RUNNING" is one round.
        async Task Watcher()
        {
            var reported = TimeSpan.Zero;
            while (running.Count + failures < options.Pods)
            {
                // Long fills say how far they are, so that a run too slow for its time can be told early.
                if (clock.Elapsed - reported > TimeSpan.FromSeconds(30))
                {
                    reported = clock.Elapsed;
                    Console.Error.WriteLine($"{prefix}: {created.Count} created, {running.Count} of {options.Pods} RUNNING after {reported.TotalSeconds:F0} s");
                }
                var pending = created.Keys.Where(id => !running.ContainsKey(id)).ToArray();
                if (pending.Length > 0)
                {
                    await using var session = app.Store.QuerySession();
                    var now = clock.ElapsedTicks;
                    var done = await session.Query<PodView>().Where(p => p.Id.IsOneOf(pending) && p.State == PodState.Running).Select(p => p.Id).ToListAsync();
                    foreach (var id in done) running.TryAdd(id, Stats.Ms(now - created[id].Started));
                }
                if (clock.Elapsed > timeout) throw new TimeoutException($"only {running.Count} of {options.Pods} pods ran within {timeout}");
                await Task.Delay(pollEvery ?? TimeSpan.FromMilliseconds(10));
            }
        }

        var watcher = Task.Run(Watcher);
        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(Creator)));
        var createSeconds = clock.Elapsed.TotalSeconds;
        await watcher;
        var totalSeconds = clock.Elapsed.TotalSeconds;
        var work = await DatabaseWorkAsync(app) - before;
        var top = await TopStatementsAsync(app.ConnectionString, 30);
        var slowest = await TopStatementsAsync(app.ConnectionString, 8, byTime: true);
        int podsThere;
        await using (var session = app.Store.QuerySession())
            podsThere = await session.Query<PodView>().CountAsync(p => p.Name.StartsWith(prefix));
        var (placedPerSecond, phases) = await PhasesAsync(app.ConnectionString, [.. created.Keys]);
        return new Run(failures, created.Count, podsThere, createSeconds, totalSeconds, [.. created.Values.Select(v => v.CreateMs).Order()], [.. running.Values.Order()], work,
            top, slowest, placedPerSecond, phases);
    }

    /// <summary>
    /// The work done so far: commits and rows of the bench's database (pg_stat_database), statements the application sent
    /// (pg_stat_statements, top level: each is at most one round trip, fewer when Npgsql batches them), and CPU seconds of
    /// this process (the API and its simulated fleet) and of PostgreSQL's processes. Idle queue polling is included.
    /// </summary>
    public sealed record Work(long Commits, long Rows, long Statements, double ApiCpuSeconds, double PostgresCpuSeconds)
    {
        public static Work operator -(Work a, Work b) =>
            new(a.Commits - b.Commits, a.Rows - b.Rows, a.Statements - b.Statements, a.ApiCpuSeconds - b.ApiCpuSeconds, a.PostgresCpuSeconds - b.PostgresCpuSeconds);
    }

    /// <param name="start">Starts the statement counts anew (the measured run's beginning): they then count from zero.</param>
    public static async Task<Work> DatabaseWorkAsync(BenchApp app, bool start = false)
    {
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await using (var extension = new NpgsqlCommand("create extension if not exists pg_stat_statements", connection)) await extension.ExecuteNonQueryAsync();
        // The statistics collector reports with a delay of up to half a second: wait for it so both ends are comparable.
        await using (var flush = new NpgsqlCommand("select pg_stat_clear_snapshot(), pg_sleep(0.6)", connection)) await flush.ExecuteNonQueryAsync();
        await using var cmd = new NpgsqlCommand(
            "select xact_commit, tup_inserted + tup_updated + tup_deleted + tup_fetched, " +
            "(select coalesce(sum(calls), 0)::bigint from pg_stat_statements s where s.dbid = d.datid and s.query not like '%pg_stat%') " +
            "from pg_stat_database d where datname = current_database()", connection);
        Work work;
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            work = new Work(reader.GetInt64(0), reader.GetInt64(1), start ? 0 : reader.GetInt64(2), Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds,
                PostgresCpuSeconds(app.PostgresDataDirectory));
        }
        if (start)
        {
            await using var reset = new NpgsqlCommand("select pg_stat_statements_reset()", connection);
            await reset.ExecuteNonQueryAsync();
        }
        return work;
    }

    /// <summary>The statements the application sent most often since the measured run started, with their share of the time.</summary>
    public static async Task<List<(long Calls, double TotalMs, string Query)>> TopStatementsAsync(string connectionString, int count, bool byTime = false)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "select calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') from pg_stat_statements " +
            "where dbid = (select oid from pg_database where datname = current_database()) and query not like '%pg_stat%' order by " + (byTime ? "total_exec_time" : "calls") + " desc limit $1", connection);
        cmd.Parameters.AddWithValue(count);
        var top = new List<(long, double, string)>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) top.Add((reader.GetInt64(0), reader.GetDouble(1), reader.GetString(2)));
        return top;
    }

    /// <summary>
    /// User and system CPU of the postmaster and its children (backends, checkpointer, WAL writer) from /proc. Backends that
    /// ended in between are not counted; the application's pool keeps its connections, so those are few.
    /// </summary>
    private static double PostgresCpuSeconds(string dataDirectory)
    {
        var pidFile = Path.Combine(dataDirectory, "postmaster.pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadLines(pidFile).First(), CultureInfo.InvariantCulture, out var postmaster)) return double.NaN;
        double ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            // Fields after the command (which may hold spaces): state ppid ... utime is field 14, stime 15.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
            if (pid != postmaster && parent != postmaster) continue;
            ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }
        // USER_HZ is 100 on Linux.
        return ticks / 100.0;
    }

    /// <summary>The given pods' own events, as PostgreSQL timestamped them: the scheduler's rate, and how long each hop took.</summary>
    private static async Task<(double PlacedPerSecond, List<(string, double, double)> Phases)> PhasesAsync(string connectionString, Guid[] pods)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        const string sql = """
            with p as (
              select stream_id,
                     min(timestamp) filter (where type = 'pod_requested') as requested,
                     max(timestamp) filter (where type = 'pod_replica_scheduled') as scheduled,
                     min(timestamp) filter (where type = 'pod_replica_booting') as booting,
                     max(timestamp) filter (where type = 'pod_replica_running') as running
              from kraud.mt_events where type like 'pod_%' and stream_id = any($1) group by stream_id),
            m as (select * from p where running is not null)
            select count(*) / nullif(extract(epoch from max(scheduled) - min(requested)), 0),
                   percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from scheduled - requested) * 1000),
                   percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from running - scheduled) * 1000),
                   percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from booting - scheduled) * 1000) filter (where booting is not null),
                   percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from running - booting) * 1000) filter (where booting is not null),
                   count(*) filter (where booting is null)
            from m
            """;
        await using var cmd = new NpgsqlCommand(sql, connection);
        cmd.Parameters.AddWithValue(pods);
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        var phases = new List<(string, double, double)>();
        // A host reports BOOTING only for a boot that takes a while (BootMicroVmHandler.BootingReportAfter): at boot delay 0
        // most pods go from SCHEDULED to RUNNING, and the two hops are shown for those that did report it.
        var direct = reader.GetInt64(5);
        foreach (var (name, i) in new[]
                 {
                     ("requested -> scheduled (scheduler queue)", 1), ("scheduled -> running (host queue, boot, report queue)", 2),
                     ($"scheduled -> booting (host queue; {direct} pods reported no BOOTING)", 3), ("booting -> running (report queue)", 4),
                 })
        {
            var values = reader.IsDBNull(i) ? [double.NaN, double.NaN] : (double[])reader.GetValue(i);
            phases.Add((name, values[0], values[1]));
        }
        return (Convert.ToDouble(reader.GetValue(0), CultureInfo.InvariantCulture), phases);
    }
}
