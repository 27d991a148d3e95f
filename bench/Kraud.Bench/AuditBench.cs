using System.Collections.Immutable;
using System.Diagnostics;
using System.Net.Http.Headers;
using Kraud.Domain.Pods;
using Kraud.Projections.Audit;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Kraud.Bench;

/// <summary>
/// The event log at scale: N events (default 1,000,000) of pod lifecycles are appended in bulk, the audit chain is
/// projected from them, and then: the JSONL export rate (entries/s) through the HTTP pipeline, the audit chain's rebuild
/// rate beside a raw sequential read of the same events table (the ratio is the figure), and platformAt latency for
/// an instant in the middle of the log.
/// </summary>
public static class AuditBench
{
    private const int EventsPerPod = 4;

    public static async Task<int> RunAsync(Options options)
    {
        var events = options.Events;
        await using var app = await BenchApp.StartAsync(options with { Hosts = 21 }, ("Kraud:AuditDigestIntervalSeconds", "100000"));
        var store = app.Store;
        var tenant = Guid.NewGuid();
        var clock = Stopwatch.StartNew();

        // Bulk append, as a busy platform would have written them over weeks: requested, scheduled, booting, running.
        var pods = events / EventsPerPod;
        const int podsPerTransaction = 500;
        var host = app.Agents.All.First(a => a.Definition.Role == "Compute");
        for (var start = 0; start < pods; start += podsPerTransaction)
        {
            await using var session = store.LightweightSession();
            session.SetHeader(AuditHeaders.Actor, "bench");
            session.SetHeader(AuditHeaders.Tenant, tenant.ToString());
            session.SetHeader(AuditHeaders.Command, "CreatePod");
            for (var i = start; i < Math.Min(pods, start + podsPerTransaction); i++)
            {
                var pod = Guid.NewGuid();
                var vm = Pod.VmIdFor(pod, 0, 0);
                var now = DateTimeOffset.UtcNow;
                session.SetHeader(AuditHeaders.CommandId, pod.ToString());
                session.Events.StartStream(pod,
                    new PodRequested(pod, tenant, new PodSpec($"p{i}", "default", "nginx", [], ImmutableDictionary<string, string>.Empty, 1, 64, null, false, 0), 1, "bench", now),
                    new PodReplicaScheduled(pod, 0, 0, vm, host.Id, host.Name, now),
                    new PodReplicaBooting(pod, vm, host.Id, now),
                    new PodReplicaRunning(pod, vm, host.Id, 1.0, now));
            }
            await session.SaveChangesAsync();
        }
        var appendSeconds = clock.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"appended {pods * EventsPerPod} events in {appendSeconds:F0} s; projecting the audit chain");

        clock.Restart();
        await store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromMinutes(60));
        var projectSeconds = clock.Elapsed.TotalSeconds;
        long entries, totalEvents;
        await using (var session = store.QuerySession())
        {
            entries = (await session.LoadAsync<AuditChainHead>(AuditChainHead.PlatformChain))!.LastEntry;
            totalEvents = await session.Events.QueryAllRawEvents().CountAsync();
        }

        // Export: streamed through the whole ASP.NET Core pipeline, counted as it arrives.
        clock.Restart();
        var client = app.Host.Server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/exports/audit?format=jsonl");
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

        // Rebuild beside a raw read of the same table.
        clock.Restart();
        await using (var connection = new NpgsqlConnection(app.ConnectionString))
        {
            await connection.OpenAsync();
            await using var cmd = new NpgsqlCommand("select seq_id, data, headers from kraud.mt_events order by seq_id", connection);
            await using var reader = await cmd.ExecuteReaderAsync();
            long n = 0;
            while (await reader.ReadAsync()) { _ = reader.GetString(1); n++; }
        }
        var rawSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        await app.Gql(BenchApp.OperatorToken, "mutation { rebuildProjection(name: \"AuditChain\") { state } }");
        await BenchApp.WaitUntil(async () =>
            (await app.Gql(BenchApp.OperatorToken, "{ rebuildJob(name: \"AuditChain\") { state } }")).GetProperty("rebuildJob").GetProperty("state").GetString() != "RUNNING",
            "the rebuild finished", seconds: 3600);
        var rebuildSeconds = clock.Elapsed.TotalSeconds;

        // platformAt in the middle of the log.
        DateTimeOffset middle;
        await using (var session = store.QuerySession())
            middle = (await session.Events.QueryAllRawEvents().OrderBy(e => e.Sequence).Skip((int)(totalEvents / 2)).Take(1).SingleAsync()).Timestamp;
        var latencies = new List<double>();
        for (var i = 0; i < 3; i++)
        {
            clock.Restart();
            var snapshot = await app.Gql(BenchApp.OperatorToken, "query($t: DateTime!) { platformAt(asOf: $t) { pods { id } } }", new { t = middle.UtcDateTime });
            latencies.Add(clock.Elapsed.TotalMilliseconds);
            if (i == 0) Console.Error.WriteLine($"platformAt saw {snapshot.GetProperty("platformAt").GetProperty("pods").GetArrayLength()} pods");
        }

        Console.WriteLine();
        Console.WriteLine($"Kraud audit benchmark: {totalEvents} events ({pods} pod lifecycles), {entries} audit entries, PostgreSQL {(options.Durable ? "durable" : "fsync off")}, {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| metric | Kraud | baseline |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| bulk append | {totalEvents / appendSeconds:F0} events/s | - |");
        Console.WriteLine($"| audit chain (async daemon, live during the append) caught up | {projectSeconds:F1} s after the last append | - |");
        Console.WriteLine($"| JSONL export over HTTP | {lines / exportSeconds:F0} entries/s ({bytes / exportSeconds / 1e6:F1} MB/s) | - |");
        Console.WriteLine($"| audit chain rebuild | {totalEvents / rebuildSeconds:F0} events/s | raw sequential read of mt_events: {totalEvents / rawSeconds:F0} events/s (ratio {rawSeconds / rebuildSeconds:F3}) |");
        Console.WriteLine($"| platformAt (middle of the log) | {latencies.Min():F0} ms best, {latencies.Max():F0} ms worst of 3 | - |");
        Console.WriteLine();
        return 0;
    }
}
