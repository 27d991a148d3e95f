using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Kraud.Api.Replay;
using Kraud.Projections.Audit;
using Kraud.Projections.Fleet;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Kraud.Bench;

/// <summary>
/// The event log at scale. A history of N events (default 1,000,000; see BulkHistory: pods created and deleted with
/// about --live running, host failures) is written into the log, and then, beside a raw sequential read of the same
/// events table in the same run: the audit chain's rebuild rate (the ratio is the issue's figure), the platform
/// projection's checkpoints rebuilt, a Marten read model (PodView) rebuilt through the daemon, the JSONL export rate
/// through the HTTP pipeline, platformAt latency at 10 random instants, and the disk the database uses per million events.
/// </summary>
public static class AuditBench
{
    public static async Task<int> RunAsync(Options options)
    {
        await using var app = await BenchApp.StartAsync(options with { Hosts = 21 }, ("Kraud:AuditDigestIntervalSeconds", "100000"));
        var store = app.Store;
        var clock = Stopwatch.StartNew();
        using var load = new LoadAverage();
        void Phase(string name) => Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {name} done, 1-minute load average {load.EndPhase(name)}");

        List<(Guid Id, string Name)> compute;
        Guid spare;
        await using (var session = store.QuerySession())
        {
            var hosts = await session.Query<HostView>().ToListAsync();
            compute = hosts.Where(h => h.Name.StartsWith("bench-c", StringComparison.Ordinal)).Select(h => (h.Id, h.Name)).ToList();
            spare = hosts.First(h => h.Name.StartsWith("bench-spare", StringComparison.Ordinal)).Id;
        }
        // The daemon's agent would chain the history at its own pace while it is written; the bulk rebuild below chains it
        // (and starts the agent again at the end of it).
        var held = app.Host.Services.GetRequiredService<AuditChainProjection>().Hold();
        var history = new BulkHistory(store, app.ConnectionString, Guid.NewGuid(), compute, options.Live);
        await history.LearnTypesAsync(spare);
        clock.Restart();
        var appended = await history.AppendAsync(options.Events);
        var appendSeconds = clock.Elapsed.TotalSeconds;
        var totalEvents = await ScalarAsync(app, "select count(*) from kraud.mt_events");
        var lastSeq = await ScalarAsync(app, "select max(seq_id) from kraud.mt_events");
        Console.Error.WriteLine($"appended {appended} events ({history.Pods} pods, {history.HostFailures} host failures) in {appendSeconds:F0} s");
        Phase("append");

        // The checkpoint writer follows the log in the background while it is written; wait until it caught up.
        var checkpointer = app.Host.Services.GetRequiredService<PlatformCheckpointer>();
        clock.Restart();
        await BenchApp.WaitUntil(async () => (await checkpointer.Checkpoints.LatestAsync(default))?.Seq >= lastSeq - 20_000, "the checkpoints caught up", 7200);
        var checkpointLagSeconds = clock.Elapsed.TotalSeconds;
        Phase("checkpoints caught up");

        // A raw sequential read of the events table: the baseline the rebuilds compare with, twice (the first warms the cache).
        var raw = new List<double>();
        for (var i = 0; i < 2; i++) raw.Add(await RawAsync(app, totalEvents));
        Phase("raw reads");

        held.Dispose();
        var audit = await RebuildAsync(app, AuditChainProjection.Name);
        long entries;
        await using (var session = store.QuerySession())
            entries = (await session.LoadAsync<AuditChainHead>(AuditChainHead.PlatformChain))!.LastEntry;
        var rawAfter = await RawAsync(app, totalEvents);
        Console.Error.WriteLine($"raw reads {string.Join(" / ", raw.Concat([rawAfter]).Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} events/s; " +
                                $"audit chain rebuild {audit.Rate:N0} events/s ({audit.Seconds:F1} s), {entries:N0} entries");
        Phase("audit chain rebuild and third raw read");

        // Export: streamed through the whole ASP.NET Core pipeline, counted as it arrives (the first 2,000,000 entries at most).
        var exportTo = Math.Min(entries, 2_000_000);
        clock.Restart();
        var client = app.Host.Server.CreateClient();
        client.Timeout = TimeSpan.FromHours(2);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/exports/audit?format=jsonl&toSeq={exportTo}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", BenchApp.OperatorToken);
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        long lines = 0, bytes = 0;
        await using (var body = await response.Content.ReadAsStreamAsync())
        {
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                bytes += read;
                for (var i = 0; i < read; i++) if (buffer[i] == '\n') lines++;
            }
        }
        var exportSeconds = clock.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"export: {lines / exportSeconds:N0} entries/s");
        Phase("export");

        // platformAt at 10 random instants of the history, the whole platform each time.
        var random = new Random(10);
        var latencies = new List<double>();
        var sizes = new List<int>();
        for (var i = 0; i < 10; i++)
        {
            var at = history.FirstAt + (history.LastAt - history.FirstAt) * random.NextDouble();
            clock.Restart();
            var snapshot = await app.Gql(BenchApp.OperatorToken, "query($t: DateTime!) { platformAt(asOf: $t) { hosts { name state } pods { id state } } }",
                new { t = at.UtcDateTime });
            latencies.Add(clock.Elapsed.TotalMilliseconds);
            sizes.Add(snapshot.GetProperty("platformAt").GetProperty("pods").GetArrayLength());
        }
        latencies.Sort();
        Console.Error.WriteLine($"platformAt: {string.Join(", ", latencies.Select(l => l.ToString("F0", CultureInfo.InvariantCulture)))} ms");
        Phase("platformAt");

        var checkpoints = await RebuildAsync(app, "PlatformCheckpoints");
        Console.Error.WriteLine($"platform checkpoints rebuilt: {checkpoints.Rate:N0} events/s ({checkpoints.Seconds:F1} s)");
        Phase("checkpoints rebuild");

        // An archive of the whole log: the chain's head signed, then every event and entry written, compressed, after it.
        // The history's clock runs 125 µs per event from the moment the append began, ahead of the wall clock (the append
        // writes faster than 8,000 events/s), and an archive ends before an instant in the past: wait until its end is past.
        var ahead = history.LastAt - DateTimeOffset.UtcNow;
        if (ahead > TimeSpan.Zero)
        {
            Console.Error.WriteLine($"waiting {ahead.TotalSeconds:F0} s until the history's last instant is in the past, to archive all of it");
            await Task.Delay(ahead + TimeSpan.FromSeconds(1));
        }
        (await app.Gql(BenchApp.OperatorToken, "mutation { signAuditDigest { seq } }")).GetProperty("signAuditDigest");
        await Task.Delay(10);
        clock.Restart();
        var archive = (await app.Gql(BenchApp.OperatorToken, "mutation($b: DateTime) { archiveEvents(before: $b) { file events toEntry bytes } }",
            new { b = DateTime.UtcNow })).GetProperty("archiveEvents");
        var archiveSeconds = clock.Elapsed.TotalSeconds;
        var archivedEvents = archive.GetProperty("events").GetInt64();
        var archiveBytes = (long)archive.GetProperty("bytes").GetDouble();
        Console.Error.WriteLine($"archive: {archivedEvents / archiveSeconds:N0} events/s, {archiveBytes:N0} bytes in {archiveSeconds:F1} s");
        Phase("archive");

        (double Rate, double Seconds)? podView = options.ReadModels ? await RebuildAsync(app, "PodView") : null;
        if (podView is not null) Phase("PodView rebuild");

        var database = await ScalarAsync(app, "select pg_database_size(current_database())");
        var eventsTable = await ScalarAsync(app, "select pg_total_relation_size('kraud.mt_events') + pg_total_relation_size('kraud.mt_streams')");
        var chainTable = await ScalarAsync(app, "select pg_total_relation_size('kraud.mt_doc_auditentry')");
        var checkpointTables = await ScalarAsync(app, "select pg_total_relation_size('kraud.replay_states') + pg_total_relation_size('kraud.replay_checkpoints')");
        var checkpointCount = await ScalarAsync(app, "select count(*) from kraud.replay_checkpoints");
        double PerMillion(long b) => b / (totalEvents / 1e6) / (1 << 20);

        // The archive's events leave the log: the file verified, then the events of the pods that had ended deleted in
        // batches (the history's pods end but for about --live of them). Measured after the disk, which it does not
        // shrink until a vacuum.
        clock.Restart();
        var removal = (await app.Gql(BenchApp.OperatorToken, "mutation { removeArchivedEvents { removedEvents removedUpToSeq } }")).GetProperty("removeArchivedEvents");
        var removalSeconds = clock.Elapsed.TotalSeconds;
        var removedEvents = removal.GetProperty("removedEvents").GetInt64();
        var eventsLeft = await ScalarAsync(app, "select count(*) from kraud.mt_events");
        File.Delete(archive.GetProperty("file").GetString()!);
        Console.Error.WriteLine($"removal: {removedEvents:N0} events in {removalSeconds:F1} s, {eventsLeft:N0} left");
        Phase("removal");

        var rawBest = raw.Concat([rawAfter]).Max();
        Console.WriteLine();
        Console.WriteLine($"Kraud audit benchmark: {totalEvents:N0} events ({history.Pods:N0} pods, about {options.Live:N0} running at a time, {history.HostFailures} host " +
                          $"failures), {entries:N0} audit entries, {checkpointCount} checkpoints, PostgreSQL {(options.Durable ? "durable" : "fsync off")}, " +
                          $"{Environment.ProcessorCount} cores");
        Console.WriteLine($"1-minute load average while it ran, per phase: {string.Join("; ", load.Phases.Select(p => $"{p.Phase} {LoadAverage.Format(p.Min, p.Max)}"))}");
        Console.WriteLine();
        Console.WriteLine("| metric | Kraud | baseline (same run) |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| raw sequential read of mt_events (seq_id, data, headers) | {string.Join(" / ", raw.Concat([rawAfter]).Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} events/s (3 reads) | - |");
        Console.WriteLine($"| bulk write of the history (COPY) | {appended / appendSeconds:N0} events/s | - |");
        Console.WriteLine($"| checkpoints written by the background writer | caught up {checkpointLagSeconds:F0} s after the write | - |");
        Console.WriteLine($"| audit chain rebuild | {audit.Rate:N0} events/s ({audit.Seconds:F1} s) | best raw read {rawBest:N0} events/s: ratio {audit.Rate / rawBest:F3} |");
        Console.WriteLine($"| read model rebuild: platform checkpoints | {checkpoints.Rate:N0} events/s ({checkpoints.Seconds:F1} s) | ratio {checkpoints.Rate / rawBest:F3} |");
        if (podView is { } pv)
            Console.WriteLine($"| read model rebuild: PodView (Marten daemon) | {pv.Rate:N0} events/s ({pv.Seconds:F1} s) | ratio {pv.Rate / rawBest:F3} |");
        Console.WriteLine($"| JSONL export over HTTP (first {exportTo:N0} entries) | {lines / exportSeconds:N0} entries/s ({bytes / exportSeconds / 1e6:F1} MB/s) | - |");
        Console.WriteLine($"| platformAt, 10 random instants | p50 {Stats.P(latencies, 50):F0} ms, p99 {Stats.P(latencies, 99):F0} ms " +
                          $"(min {latencies[0]:F0}, {sizes.Min():N0}-{sizes.Max():N0} pods each) | target 1,000 ms |");
        Console.WriteLine($"| archive (events with bodies + audit entries, gzip JSONL) | {archivedEvents / archiveSeconds:N0} events/s, {archiveBytes / archiveSeconds / 1e6:F1} MB/s " +
                          $"compressed ({archiveSeconds:F1} s), {archiveBytes / (archivedEvents / 1e6) / (1 << 20):F0} MiB per million events | - |");
        Console.WriteLine($"| removal of the archive's events (verify the file, delete ended pods' events in batches, compact live streams) | {removedEvents / removalSeconds:N0} events/s " +
                          $"({removedEvents:N0} removed in {removalSeconds:F1} s, {eventsLeft:N0} left, up to event {removal.GetProperty("removedUpToSeq").GetInt64():N0}) | - |");
        Console.WriteLine($"| disk per million events | {PerMillion(database):F0} MiB in all: events {PerMillion(eventsTable):F0}, audit chain {PerMillion(chainTable):F0}, " +
                          $"checkpoints {PerMillion(checkpointTables):F0} | - |");
        Console.WriteLine();
        return 0;
    }

    private static async Task<double> RawAsync(BenchApp app, long totalEvents)
    {
        var clock = Stopwatch.StartNew();
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand("select seq_id, data, headers from kraud.mt_events order by seq_id", connection) { CommandTimeout = 0 };
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) _ = reader.GetString(1);
        return totalEvents / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Rebuilds through the API, as an operator would, and reads the job's own figures when it is done.</summary>
    private static async Task<(double Rate, double Seconds)> RebuildAsync(BenchApp app, string name)
    {
        await app.Gql(BenchApp.OperatorToken, "mutation($n: String!) { rebuildProjection(name: $n) { state } }", new { n = name });
        JsonElement job = default;
        var shown = Stopwatch.StartNew();
        await BenchApp.WaitUntil(async () =>
        {
            job = (await app.Gql(BenchApp.OperatorToken, "query($n: String!) { rebuildJob(name: $n) { state eventsProcessed eventsTotal eventsPerSecond etaSeconds elapsedSeconds } }",
                new { n = name })).GetProperty("rebuildJob");
            if (shown.Elapsed > TimeSpan.FromSeconds(10))
            {
                Console.Error.WriteLine($"{name}: {job}");
                shown.Restart();
            }
            return job.GetProperty("state").GetString() != "RUNNING";
        }, $"{name} was rebuilt", seconds: 7200);
        if (job.GetProperty("state").GetString() != "COMPLETED") throw new InvalidOperationException($"{name}: {job}");
        var seconds = job.GetProperty("elapsedSeconds").GetDouble();
        return (job.GetProperty("eventsProcessed").GetInt32() / seconds, seconds);
    }

    private static async Task<long> ScalarAsync(BenchApp app, string sql)
    {
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
