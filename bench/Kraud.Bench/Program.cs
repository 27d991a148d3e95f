using System.Diagnostics;
using System.Text.Json;
using Alba;
using Kraud.Api.Database;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

// Kraud benchmarks. Each prints a table beside the baseline it names.
//   dotnet run -c Release --project bench/Kraud.Bench -- pods [--pods 500] [--concurrency 8] [--hosts 20] [--replicas 1] [--durable true]
var options = Options.Parse(args);
if (options.Help || options.Benchmark != "pods")
{
    Console.WriteLine("usage: Kraud.Bench pods [--pods N] [--concurrency C] [--hosts H] [--replicas R] [--durable true|false]");
    return options.Help ? 0 : 2;
}

var root = Path.Combine(Path.GetTempPath(), $"kraud-bench-{Guid.NewGuid():N}"[..30]);
await using var postgres = await EmbeddedPostgres.StartAsync(Path.Combine(root, "pg"), "kraud_bench", durable: options.Durable);
const string operatorToken = "krd_bench_operator";
// Any type of Kraud.Api names its entry point (this program has a Program class of its own).
await using var host = await AlbaHost.For<Kraud.Api.Configuration.KraudDatabase>(b =>
{
    b.UseSetting("ConnectionStrings:Kraud", postgres.ConnectionString);
    b.UseSetting("KRAUD_BOOTSTRAP_TOKEN", operatorToken);
    b.UseSetting("Kraud:StateDirectory", Path.Combine(root, "state"));
    b.UseSetting("Logging:LogLevel:Default", "Warning");
    b.UseSetting("Fleet:SimulatedBootDelayMs", "0");
    // A fleet of identical compute hosts sized for the run (replaces the default fleet's entries).
    for (var i = 0; i < Math.Max(options.Hosts, 17); i++)
    {
        var compute = i < options.Hosts;
        b.UseSetting($"Fleet:Hosts:{i}:Name", compute ? $"bench-c{i:000}" : $"bench-spare{i:000}");
        b.UseSetting($"Fleet:Hosts:{i}:Zone", $"bench-{(char)('a' + i % 2)}");
        b.UseSetting($"Fleet:Hosts:{i}:Rack", $"r{i % 4}");
        b.UseSetting($"Fleet:Hosts:{i}:Role", compute ? "Compute" : "Storage");
        b.UseSetting($"Fleet:Hosts:{i}:Cpu", "256");
        b.UseSetting($"Fleet:Hosts:{i}:MemoryMiB", "1048576");
        b.UseSetting($"Fleet:Hosts:{i}:SevSnp", "false");
    }
});
var store = host.Services.GetRequiredService<IDocumentStore>();
var hostsWanted = Math.Max(options.Hosts, 17);
await WaitUntil(async () => { await using var s = store.QuerySession(); return await s.Query<HostView>().CountAsync() == hostsWanted; }, "the fleet registered");

async Task<JsonElement> Gql(string token, string query, object? variables = null)
{
    var result = await host.Scenario(s =>
    {
        s.Post.Json(new { query, variables }).ToUrl("/graphql");
        s.WithRequestHeader("Authorization", $"Bearer {token}");
        s.StatusCodeShouldBe(200);
    });
    var json = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement;
    if (json.TryGetProperty("errors", out var errors)) throw new InvalidOperationException(errors.ToString());
    return json.GetProperty("data").Clone();
}

var tenantId = (await Gql(operatorToken, "mutation { createTenant(input: {name: \"bench\"}) { id } }")).GetProperty("createTenant").GetProperty("id").GetString();
var token = (await Gql(operatorToken, "mutation($t: ID) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"bench\"}) { token } }", new { t = tenantId }))
    .GetProperty("createApiToken").GetProperty("token").GetString()!;

// Warm-up: the first call of each handler compiles it (dynamic code generation); that is not what we measure.
for (var i = 0; i < 3; i++)
{
    var id = (await Gql(token, "mutation($n: String!) { createPod(input: {name: $n, image: \"nginx\", cpu: 1, memoryMiB: 64}) { id } }", new { n = $"warm{i}" }))
        .GetProperty("createPod").GetProperty("id").GetString()!;
    await WaitUntil(async () => { await using var s = store.QuerySession(); return (await s.LoadAsync<PodView>(Guid.Parse(id)))?.State == PodState.Running; }, "warm-up pod runs");
}

var created = new System.Collections.Concurrent.ConcurrentDictionary<Guid, (long Started, double CreateMs)>();
var running = new System.Collections.Concurrent.ConcurrentDictionary<Guid, double>();
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
            var id = (await Gql(token, "mutation($n: String!, $r: Int) { createPod(input: {name: $n, image: \"nginx\", cpu: 1, memoryMiB: 64, replicas: $r}) { id } }",
                new { n = $"pod{n:00000}", r = options.Replicas })).GetProperty("createPod").GetProperty("id").GetString()!;
            created[Guid.Parse(id)] = (started, Ms(clock.ElapsedTicks - started));
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref failures);
            Console.Error.WriteLine($"createPod failed: {e.Message}");
        }
    }
}

// Watches for pods becoming RUNNING with one query per round (the resolution of "time to RUNNING" is one round).
async Task Watcher()
{
    while (running.Count + failures < options.Pods)
    {
        var pending = created.Keys.Where(id => !running.ContainsKey(id)).ToArray();
        if (pending.Length > 0)
        {
            await using var session = store.QuerySession();
            var now = clock.ElapsedTicks;
            var done = await session.Query<PodView>().Where(p => p.Id.IsOneOf(pending) && p.State == PodState.Running).Select(p => p.Id).ToListAsync();
            foreach (var id in done) running.TryAdd(id, Ms(now - created[id].Started));
        }
        if (clock.Elapsed > TimeSpan.FromMinutes(10)) throw new TimeoutException($"only {running.Count} of {options.Pods} pods ran within 10 minutes");
        await Task.Delay(10);
    }
}

var watcher = Task.Run(Watcher);
await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(Creator)));
var createSeconds = clock.Elapsed.TotalSeconds;
await watcher;
var totalSeconds = clock.Elapsed.TotalSeconds;

var createMs = created.Values.Select(v => v.CreateMs).Order().ToArray();
var runMs = running.Values.Order().ToArray();
Console.WriteLine();
Console.WriteLine($"Kraud pods benchmark: {options.Pods} pods x {options.Replicas} replica(s), {options.Concurrency} concurrent clients, {options.Hosts} simulated compute hosts, boot delay 0, " +
                  $"PostgreSQL {(options.Durable ? "durable (fsync on)" : "fsync off")}, {Environment.ProcessorCount} cores");
Console.WriteLine();
Console.WriteLine("| metric | Kraud | baseline (Kubernetes SLO / scheduler target) |");
Console.WriteLine("|---|---|---|");
Console.WriteLine($"| pods RUNNING per second | {options.Pods / totalSeconds:F1} | scheduler >= 100 pods/s |");
Console.WriteLine($"| createPod accepted per second | {options.Pods / createSeconds:F1} | - |");
Console.WriteLine($"| createPod latency p50 / p90 / p99 | {P(createMs, 50):F0} / {P(createMs, 90):F0} / {P(createMs, 99):F0} ms | API call latency p99 <= 1000 ms |");
Console.WriteLine($"| create -> RUNNING p50 / p90 / p99 | {P(runMs, 50):F0} / {P(runMs, 90):F0} / {P(runMs, 99):F0} ms | pod startup p99 <= 5000 ms |");
Console.WriteLine($"| failed creates | {failures} | 0 |");
Console.WriteLine();

// Where the time goes: the pod's own events, as PostgreSQL timestamped them.
await using (var connection = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
{
    await connection.OpenAsync();
    const string phases = """
        with p as (
          select stream_id,
                 min(timestamp) filter (where type = 'pod_requested') as requested,
                 min(timestamp) filter (where type = 'pod_replica_scheduled') as scheduled,
                 min(timestamp) filter (where type = 'pod_replica_booting') as booting,
                 max(timestamp) filter (where type = 'pod_replica_running') as running
          from kraud.mt_events where type like 'pod_%' group by stream_id)
        select percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from scheduled - requested) * 1000),
               percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from booting - scheduled) * 1000),
               percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from running - booting) * 1000)
        from p where running is not null
        """;
    await using var cmd = new Npgsql.NpgsqlCommand(phases, connection);
    await using var reader = await cmd.ExecuteReaderAsync();
    await reader.ReadAsync();
    Console.WriteLine("| phase (commit to commit) | p50 | p99 |");
    Console.WriteLine("|---|---|---|");
    foreach (var (name, i) in new[] { ("requested -> scheduled (scheduler queue)", 0), ("scheduled -> booting (host queue)", 1), ("booting -> running (report queue)", 2) })
    {
        var values = (double[])reader.GetValue(i);
        Console.WriteLine($"| {name} | {values[0]:F0} ms | {values[1]:F0} ms |");
    }
    Console.WriteLine();
}

await host.DisposeAsync();
await postgres.StopAsync();
try { Directory.Delete(root, recursive: true); } catch (IOException) { }
return failures == 0 ? 0 : 1;

static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

static double P(double[] sorted, int percentile) =>
    sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(percentile / 100.0 * sorted.Length) - 1, 0, sorted.Length - 1)];

async Task WaitUntil(Func<Task<bool>> condition, string what)
{
    var deadline = DateTime.UtcNow.AddSeconds(120);
    while (!await condition())
    {
        if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting until {what}");
        await Task.Delay(50);
    }
}

internal sealed record Options(string Benchmark, int Pods, int Concurrency, int Hosts, int Replicas, bool Durable, bool Help)
{
    public static Options Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        return new Options(args.FirstOrDefault(a => !a.StartsWith('-')) ?? "pods", int.Parse(Get("--pods", "500")), int.Parse(Get("--concurrency", "8")),
            int.Parse(Get("--hosts", "20")), int.Parse(Get("--replicas", "1")), bool.Parse(Get("--durable", "true")),
            args.Contains("--help") || args.Contains("-h"));
    }
}
