using System.Diagnostics;
using Kraud.Api.Network;
using Kraud.Domain.Fleet;
using Kraud.Domain.Network;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Network;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Bench;

/// <summary>
/// WireGuard mesh after a host failure: many small tenants (each in one zone) run pods of several replicas over the
/// fleet; when the mesh has settled (every host applied its peer set), the fullest host loses power. From the moment
/// the failure is committed, the clock runs until every host that peered with it applied a set without it, and until
/// the mesh has converged again with the replacement microVMs (every host applied the set the current state implies).
/// </summary>
public static class MeshBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var tenants = options.Tenants;
        var podsPerTenant = Math.Max(1, options.Pods / tenants);
        // The figures run from the committed failure, so detection may be slow: heartbeats every 5 s (FAILED after 30 s)
        // keep 100 hosts' heartbeats from crowding a small machine while thousands of microVMs are placed.
        await using var app = await BenchApp.StartAsync(options, ("Fleet:HeartbeatIntervalMs", "5000"), ("Fleet:HeartbeatTimeoutSeconds", "30"));
        var tokens = new List<(string Token, string Zone)>();
        for (var t = 0; t < tenants; t++)
        {
            var id = (await app.Gql(BenchApp.OperatorToken, "mutation($n: String!) { createTenant(input: {name: $n}) { id } }", new { n = $"mesh{t:0000}" }))
                .GetProperty("createTenant").GetProperty("id").GetString();
            var token = (await app.Gql(BenchApp.OperatorToken, "mutation($t: ID) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"bench\"}) { token } }",
                new { t = id })).GetProperty("createApiToken").GetProperty("token").GetString()!;
            tokens.Add((token, $"bench-{(char)('a' + t % 2)}"));
        }

        var setup = Stopwatch.StartNew();
        var next = -1;
        var total = tenants * podsPerTenant;
        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var n && n < total)
            {
                var (token, zone) = tokens[n % tenants];
                await app.Gql(token, "mutation($n: String!, $r: Int, $z: String) { createPod(input: {name: $n, image: \"nginx\", cpu: 1, memoryMiB: 64, replicas: $r, zone: $z}) { id } }",
                    new { n = $"pod{n:00000}", r = options.Replicas, z = zone });
            }
        })));
        var progress = Stopwatch.StartNew();
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            var running = await s.Query<PodView>().CountAsync(p => p.State == PodState.Running);
            if (progress.Elapsed > TimeSpan.FromSeconds(15))
            {
                var states = (await s.Query<PodView>().ToListAsync()).GroupBy(p => p.State).Select(g => $"{g.Key} {g.Count()}");
                Console.WriteLine($"{setup.Elapsed.TotalSeconds:F0} s: {string.Join(", ", states)}");
                progress.Restart();
            }
            return running == total;
        }, "every pod runs", seconds: 1800);
        var vms = total * options.Replicas;
        await SettledAsync(app.Store, "the mesh settled after setup");
        var setupSeconds = setup.Elapsed.TotalSeconds;

        // The computation alone, as the mesh handler does it, on the settled fleet.
        var recompute = new List<double>();
        int peerEntries = 0, allowedIps = 0;
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            await using var s = app.Store.QuerySession();
            var sets = Mesh.PeerSets(MeshHandler.MeshVms(await s.Query<PodView>().Where(p => p.State != PodState.Stopped).ToListAsync()),
                MeshHandler.MeshHosts(await s.Query<HostView>().ToListAsync()));
            recompute.Add(clock.Elapsed.TotalMilliseconds);
            peerEntries = sets.Values.Sum(p => p.Length);
            allowedIps = sets.Values.Sum(p => p.Sum(x => x.AllowedIps.Length));
        }
        recompute.Sort();

        HostView victim;
        Dictionary<Guid, PeerSetView> before;
        await using (var s = app.Store.QuerySession())
        {
            victim = (await s.Query<HostView>().ToListAsync()).OrderByDescending(h => h.Host.Vms.Count).ThenBy(h => h.Name).First();
            before = (await s.Query<PeerSetView>().ToListAsync()).ToDictionary(v => v.HostId);
        }
        var peersOfVictim = before.Values.Where(v => v.Peers.Any(p => p.HostId == victim.Id)).Select(v => v.HostId).ToHashSet();
        app.Agents.All.Single(a => a.Id == victim.Id).PowerOff();

        DateTimeOffset failedAt = default;
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            failedAt = (await s.Events.FetchStreamAsync(victim.Id)).Select(e => e.Data).OfType<HostFailed>().LastOrDefault()?.At ?? default;
            return failedAt != default;
        }, "the failure is detected", seconds: 120);

        // Poll the peer sets and the hosts' acknowledgements; the first moment each condition holds is its figure.
        var lost = victim.Host.Vms.Values.Select(v => v.PodId).Distinct().ToArray();
        DateTimeOffset? firstChange = null, removalApplied = null, converged = null;
        var stableSince = Stopwatch.StartNew();
        var lastState = "";
        await BenchApp.WaitUntil(async () =>
        {
            await using var s = app.Store.QuerySession();
            var now = DateTimeOffset.UtcNow;
            var views = (await s.Query<PeerSetView>().ToListAsync()).ToDictionary(v => v.HostId);
            var acks = (await s.Query<PeerSetAck>().ToListAsync()).ToDictionary(a => a.Id, a => a.Revision);
            bool Applied(Guid host) => acks.GetValueOrDefault(host) == views[host].Revision;
            firstChange ??= views.Values.Any(v => v.Revision > before.GetValueOrDefault(v.HostId)?.Revision) ? now : null;
            removalApplied ??= peersOfVictim.All(h => views[h].Peers.All(p => p.HostId != victim.Id) && Applied(h)) ? now : null;
            var pods = await s.LoadManyAsync<PodView>(lost);
            var state = string.Join(',', views.Values.Where(v => v.HostId != victim.Id).OrderBy(v => v.HostId)
                .Select(v => $"{v.Revision}/{acks.GetValueOrDefault(v.HostId)}"));
            if (state != lastState) (lastState, stableSince) = (state, Stopwatch.StartNew());
            // The powered-off host's newest set waits in its queue until it is back: it is not part of the converged mesh.
            var done = pods.All(p => p.State == PodState.Running && p.Pod.Instances.All(i => i.HostId != victim.Id)) &&
                       views.Keys.Where(h => h != victim.Id).All(Applied);
            if (done && converged is null) converged = now;
            if (!done) converged = null;
            return done && removalApplied is not null && stableSince.Elapsed > TimeSpan.FromSeconds(2);
        }, "the mesh converged after the failure", seconds: 900);

        var changes = new List<HostPeerSetChanged>();
        await using (var s = app.Store.QuerySession())
            foreach (var host in before.Keys.Append(victim.Id).Distinct())
                changes.AddRange((await s.Events.FetchStreamAsync(PeerSetView.StreamFor(host))).Select(e => e.Data).OfType<HostPeerSetChanged>().Where(c => c.At >= failedAt));
        var removal = peersOfVictim;
        var ms = (DateTimeOffset? t) => t is { } v ? (v - failedAt).TotalMilliseconds : double.NaN;

        Console.WriteLine();
        Console.WriteLine($"Kraud mesh benchmark: {options.Hosts} simulated hosts, {tenants} tenants (each in one zone), {total} pods x {options.Replicas} = {vms} microVMs; " +
                          $"host {victim.Name} ({victim.Host.Vms.Count} microVMs, peer of {peersOfVictim.Count} hosts) loses power; heartbeats every 5 s, FAILED after 30 s; {Environment.ProcessorCount} cores; " +
                          $"setup {setupSeconds:F0} s");
        Console.WriteLine();
        Console.WriteLine("| metric | Kraud | baseline |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| peer sets of the whole fleet computed (load views + compute), p50 / max of 5 | {recompute[2]:F0} / {recompute[^1]:F0} ms | - |");
        Console.WriteLine($"| size of the mesh | {peerEntries} peer entries, {allowedIps} allowed IPs | - |");
        Console.WriteLine($"| failure committed -> first new peer set | {ms(firstChange):F0} ms | - |");
        Console.WriteLine($"| failure committed -> all {removal.Count} peers of the failed host applied a set without it | {ms(removalApplied):F0} ms | pod startup p99 <= 5000 ms (Kubernetes SLO) |");
        Console.WriteLine($"| failure committed -> mesh converged with the replacement microVMs | {ms(converged):F0} ms | pod startup p99 <= 5000 ms (Kubernetes SLO) |");
        Console.WriteLine($"| peer-set changes after the failure (events; hosts) | {changes.Count}; {changes.Select(c => c.HostId).Distinct().Count()} | - |");
        Console.WriteLine();
        return 0;
    }

    /// <summary>Every host applied its newest peer set, and nothing changed for a second (no mesh batch in flight).</summary>
    private static Task SettledAsync(IDocumentStore store, string what)
    {
        var last = "";
        var stableSince = Stopwatch.StartNew();
        return BenchApp.WaitUntil(async () =>
        {
            await using var s = store.QuerySession();
            var views = await s.Query<PeerSetView>().ToListAsync();
            var acks = (await s.Query<PeerSetAck>().ToListAsync()).ToDictionary(a => a.Id, a => a.Revision);
            var state = string.Join(',', views.OrderBy(v => v.HostId).Select(v => $"{v.Revision}/{acks.GetValueOrDefault(v.HostId)}"));
            if (state != last) (last, stableSince) = (state, Stopwatch.StartNew());
            return views.Count > 0 && views.All(v => acks.GetValueOrDefault(v.HostId) == v.Revision) && stableSince.Elapsed > TimeSpan.FromSeconds(1);
        }, what, seconds: 1800);
    }
}
