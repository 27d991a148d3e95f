using System.Diagnostics;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Bench;

/// <summary>
/// Time to recover after a host failure: pods RUNNING across the fleet, the fullest host loses power, and the clock
/// runs from the failure being detected (HostFailed committed) until every pod it ran is RUNNING elsewhere.
/// Heartbeats at the production defaults (2 s interval, 10 s window).
/// </summary>
public static class RecoveryBench
{
    public static async Task<int> RunAsync(Options options)
    {
        await using var app = await BenchApp.StartAsync(options);
        var ids = new List<Guid>();
        var next = -1;
        Lock sync = new();
        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var n && n < options.Pods)
            {
                var id = await app.CreatePodAsync($"pod{n:00000}", ns: BenchApp.NamespaceFor(n, 1));
                lock (sync) ids.Add(id);
            }
        })));
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            return await s.Query<PodView>().CountAsync(p => p.State == PodState.Running) == options.Pods;
        }, "every pod runs");

        HostView victim;
        await using (var session = app.Store.QuerySession())
            victim = (await session.Query<HostView>().ToListAsync()).OrderByDescending(h => h.Host.Vms.Count).ThenBy(h => h.Name).First();
        var affected = victim.Host.Vms.Values.Select(v => v.PodId).Distinct().ToArray();

        var clock = Stopwatch.StartNew();
        app.Agents.All.Single(a => a.Id == victim.Id).PowerOff();
        DateTimeOffset? detected = null;
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            detected = (await s.Events.FetchStreamAsync(victim.Id)).Select(e => e.Data).OfType<HostFailed>().LastOrDefault()?.At;
            return detected is not null;
        }, "the failure is detected", seconds: 120);
        var detectionSeconds = clock.Elapsed.TotalSeconds;
        var detectedTicks = clock.ElapsedTicks;

        var recovered = new Dictionary<Guid, double>();
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            var pending = affected.Where(id => !recovered.ContainsKey(id)).ToArray();
            var now = clock.ElapsedTicks;
            var views = await s.LoadManyAsync<PodView>(pending);
            foreach (var v in views.Where(v => v.State == PodState.Running && v.Pod.Instances.All(i => i.HostId != victim.Id)))
                recovered[v.Id] = Stats.Ms(now - detectedTicks);
            return recovered.Count == affected.Length;
        }, "every affected pod runs elsewhere", seconds: 300);
        var times = recovered.Values.Order().ToList();

        Console.WriteLine();
        Console.WriteLine($"Kraud recovery benchmark: {options.Pods} pods on {options.Hosts} simulated compute hosts, boot delay 0, host {victim.Name} " +
                          $"({affected.Length} pods) loses power; heartbeat every 2 s, FAILED after 10 s; {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| metric | Kraud | baseline (Kubernetes SLO) |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| power off -> FAILED detected | {detectionSeconds:F1} s | window 10 s (node-monitor-grace-period: 40 s by default) |");
        Console.WriteLine($"| detected -> all {affected.Length} pods RUNNING elsewhere | {times[^1]:F0} ms | - |");
        Console.WriteLine($"| per pod detected -> RUNNING p50 / p99 | {Stats.P(times, 50):F0} / {Stats.P(times, 99):F0} ms | pod startup p99 <= 5000 ms |");
        Console.WriteLine();
        return 0;
    }
}
