using System.Diagnostics;
using Kraud.Domain.Fleet;
using Kraud.Domain.Volumes;
using Kraud.Projections.Fleet;
using Kraud.Projections.Volumes;
using Marten;

namespace Kraud.Bench;

/// <summary>
/// Issue 4's storage measurement: --pods volumes (BLOCK, 10 GiB, 3 replicas) created over GraphQL on a simulated fleet
/// with --storage storage hosts; the clock runs from each createVolume call until the volume is HEALTHY. Then the storage
/// host holding most replicas loses power, and the clock runs from the failure being detected until every volume it held
/// is HEALTHY again on other hosts. Replicas copy for the simulated resync delay (200 ms).
/// </summary>
public static class VolumesBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var storage = options.Storage;
        await using var app = await BenchApp.StartAsync(options, storage);
        var created = new Dictionary<Guid, long>();
        var healthyAt = new Dictionary<Guid, long>();
        var clock = Stopwatch.StartNew();
        var next = -1;
        Lock sync = new();
        var creating = Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var n && n < options.Pods)
            {
                var start = clock.ElapsedTicks;
                var data = await app.Gql(app.TenantToken, "mutation($n: String!) { createVolume(input: {name: $n, class: BLOCK, sizeGiB: 10}) { id } }",
                    new { n = $"vol{n:00000}" });
                lock (sync) created[Guid.Parse(data.GetProperty("createVolume").GetProperty("id").GetString()!)] = start;
            }
        })));
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            var now = clock.ElapsedTicks;
            var healthy = await s.Query<VolumeView>().Where(v => v.State == VolumeState.Healthy).Select(v => v.Id).ToListAsync();
            lock (sync)
                foreach (var id in healthy.Where(id => created.ContainsKey(id) && !healthyAt.ContainsKey(id))) healthyAt[id] = now;
            return creating.IsCompleted && healthyAt.Count == options.Pods;
        }, "every volume is HEALTHY");
        await creating;
        var totalSeconds = clock.Elapsed.TotalSeconds;
        var createTimes = healthyAt.Select(h => Stats.Ms(h.Value - created[h.Key])).Order().ToList();

        HostView victim;
        await using (var session = app.Store.QuerySession())
            victim = (await session.Query<HostView>().Where(h => h.Role == HostRole.Storage).ToListAsync())
                .OrderByDescending(h => h.Host.Replicas.Count).ThenBy(h => h.Name).First();
        var affected = victim.Host.Replicas.Keys.ToArray();
        var failure = Stopwatch.StartNew();
        app.Agents.All.Single(a => a.Id == victim.Id).PowerOff();
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            return (await s.Events.FetchStreamAsync(victim.Id)).Any(e => e.Data is HostFailed);
        }, "the failure is detected", seconds: 120);
        var detectionSeconds = failure.Elapsed.TotalSeconds;
        var detected = failure.ElapsedTicks;
        var healed = new Dictionary<Guid, double>();
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            var now = failure.ElapsedTicks;
            var views = await s.LoadManyAsync<VolumeView>(affected.Where(id => !healed.ContainsKey(id)).ToArray());
            foreach (var v in views.Where(v => v.State == VolumeState.Healthy && !v.ReplicaHosts.Contains(victim.Id)))
                healed[v.Id] = Stats.Ms(now - detected);
            return healed.Count == affected.Length;
        }, "every affected volume is HEALTHY again", seconds: 600);
        var healTimes = healed.Values.Order().ToList();

        Console.WriteLine();
        Console.WriteLine($"Kraud volumes benchmark: {options.Pods} BLOCK volumes (3 replicas, 10 GiB) on {storage} simulated storage hosts in 2 zones, " +
                          $"concurrency {options.Concurrency}, resync delay 200 ms; then storage host {victim.Name} ({affected.Length} replicas) loses power; " +
                          $"heartbeat every 2 s, FAILED after 10 s; {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| metric | Kraud | baseline (Ceph defaults) |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| {options.Pods} volumes created -> all HEALTHY | {totalSeconds:F1} s ({options.Pods / totalSeconds:F1} volumes/s) | - |");
        Console.WriteLine($"| createVolume -> HEALTHY p50 / p90 / p99 | {Stats.P(createTimes, 50):F0} / {Stats.P(createTimes, 90):F0} / {Stats.P(createTimes, 99):F0} ms | - |");
        Console.WriteLine($"| power off -> FAILED detected | {detectionSeconds:F1} s | osd_heartbeat_grace 20 s |");
        Console.WriteLine($"| detected -> all {affected.Length} volumes HEALTHY again | {healTimes[^1]:F0} ms | re-replication starts after mon_osd_down_out_interval 600 s |");
        Console.WriteLine($"| per volume detected -> HEALTHY p50 / p99 | {Stats.P(healTimes, 50):F0} / {Stats.P(healTimes, 99):F0} ms | - |");
        Console.WriteLine();
        return 0;
    }
}
