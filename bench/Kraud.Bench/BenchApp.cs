using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Alba;
using Kraud.Api.Database;
using Kraud.HostRuntime.Agents;
using Kraud.Projections.Fleet;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Bench;

/// <summary>
/// The real Kraud application on its own embedded PostgreSQL, with a fleet of identical simulated compute hosts sized
/// for the run, and one tenant to work in. GraphQL goes through the full ASP.NET Core pipeline (Alba's in-memory server).
/// </summary>
public sealed class BenchApp : IAsyncDisposable
{
    public const string OperatorToken = "krd_bench_operator";
    private readonly string _root;
    private readonly EmbeddedPostgres _postgres;
    private readonly PosixSignalRegistration[] _signals;

    public IAlbaHost Host { get; }
    public string TenantToken { get; private set; } = "";
    public IDocumentStore Store => Host.Services.GetRequiredService<IDocumentStore>();
    public HostAgents Agents => Host.Services.GetRequiredService<HostAgents>();
    public string ConnectionString => _postgres.ConnectionString;
    public string PostgresDataDirectory => _postgres.DataDirectory;
    public string? PostgresBinDirectory => _postgres.BinDirectory;

    private BenchApp(string root, EmbeddedPostgres postgres, PosixSignalRegistration[] signals, IAlbaHost host)
    {
        _root = root;
        _postgres = postgres;
        _signals = signals;
        Host = host;
    }

    // A bench killed by SIGTERM or Ctrl-C would otherwise leave its PostgreSQL cluster running on the shared machine:
    // stop it before the process ends (the default handling of the signal then ends the process).
    private static PosixSignalRegistration[] StopOnSignals(EmbeddedPostgres postgres, string root)
    {
        void Stop(PosixSignalContext context)
        {
            Console.Error.WriteLine($"{context.Signal}: stopping the bench's PostgreSQL ({postgres.DataDirectory})");
            try { postgres.StopAsync().Wait(TimeSpan.FromSeconds(60)); }
            catch (AggregateException e) { Console.Error.WriteLine($"could not stop PostgreSQL: {e.InnerException?.Message}"); }
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
        return [PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop), PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop)];
    }

    /// <summary>Entries of appsettings.json's default fleet: every one is overwritten, so only the bench's hosts run.</summary>
    private const int DefaultFleetEntries = 23;

    public static async Task<BenchApp> StartAsync(Options options, params (string Key, string Value)[] settings) =>
        await StartAsync(options, storageHosts: 0, settings);

    /// <param name="storageHosts">Storage hosts (64 TiB each) after the compute hosts, spread over the two zones.</param>
    public static async Task<BenchApp> StartAsync(Options options, int storageHosts, params (string Key, string Value)[] settings)
    {
        var root = Path.Combine(Path.GetTempPath(), $"kraud-bench-{Guid.NewGuid():N}"[..30]);
        // pg_stat_statements counts the statements (round trips, at most) each pod costs.
        var postgres = await EmbeddedPostgres.StartAsync(Path.Combine(root, "pg"), "kraud_bench", durable: options.Durable,
            serverSettings: new Dictionary<string, string> { ["shared_preload_libraries"] = "pg_stat_statements" });
        var signals = StopOnSignals(postgres, root);
        try
        {
            return await StartAppAsync(options, storageHosts, settings, root, postgres, signals);
        }
        catch
        {
            foreach (var signal in signals) signal.Dispose();
            await postgres.StopAsync();
            throw;
        }
    }

    private static async Task<BenchApp> StartAppAsync(Options options, int storageHosts, (string Key, string Value)[] settings, string root, EmbeddedPostgres postgres,
        PosixSignalRegistration[] signals)
    {
        // Any type of Kraud.Api names its entry point (this program has a Program class of its own).
        var host = await AlbaHost.For<Kraud.Api.Common.KraudDatabase>(b =>
        {
            b.UseSetting("ConnectionStrings:Kraud", postgres.ConnectionString);
            b.UseSetting("KRAUD_BOOTSTRAP_TOKEN", OperatorToken);
            b.UseSetting("Kraud:StateDirectory", Path.Combine(root, "state"));
            b.UseSetting("Logging:LogLevel:Default", "Warning");
            b.UseSetting("Fleet:SimulatedBootDelayMs", "0");
            // createPod resolves the image's digest: a registry of Kraud's own serves "nginx" as Docker Hub's mirror (no internet here).
            b.UseSetting("Images:EmbeddedRegistry:Enabled", "true");
            b.UseSetting("Images:EmbeddedRegistry:Seed:0", "nginx");
            for (var i = 0; i < Math.Max(options.Hosts + storageHosts, DefaultFleetEntries); i++)
            {
                // Identical compute hosts in two zones, then the storage hosts; entries past those overwrite the default
                // fleet as idle storage hosts without room.
                var compute = i < options.Hosts;
                var storage = !compute && i < options.Hosts + storageHosts;
                b.UseSetting($"Fleet:Hosts:{i}:Name", compute ? $"bench-c{i:000}" : storage ? $"bench-s{i:000}" : $"bench-spare{i:000}");
                b.UseSetting($"Fleet:Hosts:{i}:NvmeGiB", storage ? "65536" : "0");
                b.UseSetting($"Fleet:Hosts:{i}:Zone", $"bench-{(char)('a' + i % 2)}");
                b.UseSetting($"Fleet:Hosts:{i}:Rack", $"r{i % 4}");
                b.UseSetting($"Fleet:Hosts:{i}:Role", compute ? "Compute" : "Storage");
                b.UseSetting($"Fleet:Hosts:{i}:Cpu", "256");
                b.UseSetting($"Fleet:Hosts:{i}:MemoryMiB", "1048576");
                b.UseSetting($"Fleet:Hosts:{i}:SevSnp", "false");
            }
            foreach (var (key, value) in settings) b.UseSetting(key, value);
        });
        var app = new BenchApp(root, postgres, signals, host);
        var hosts = Math.Max(options.Hosts + storageHosts, DefaultFleetEntries);
        await WaitUntil(async () => { await using var s = app.Store.QuerySession(); return await s.Query<HostView>().CountAsync() == hosts; }, "the fleet registered");

        var tenantId = (await app.Gql(OperatorToken, "mutation { createTenant(input: {name: \"bench\"}) { id } }")).GetProperty("createTenant").GetProperty("id").GetString();
        app.TenantToken = (await app.Gql(OperatorToken, "mutation($t: ID) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"bench\"}) { token } }", new { t = tenantId }))
            .GetProperty("createApiToken").GetProperty("token").GetString()!;
        return app;
    }

    public async Task<JsonElement> Gql(string token, string query, object? variables = null)
    {
        var result = await Host.Scenario(s =>
        {
            s.Post.Json(new { query, variables }).ToUrl("/graphql");
            s.WithRequestHeader("Authorization", $"Bearer {token}");
            s.StatusCodeShouldBe(200);
        });
        var json = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement;
        if (json.TryGetProperty("errors", out var errors)) throw new InvalidOperationException(errors.ToString());
        return json.GetProperty("data").Clone();
    }

    public async Task<Guid> CreatePodAsync(string name, int replicas = 1, string ns = "default") =>
        Guid.Parse((await Gql(TenantToken,
            "mutation($n: String!, $r: Int, $ns: String) { createPod(input: {name: $n, namespace: $ns, image: \"nginx\", cpu: 1, memoryMiB: 64, replicas: $r}) { id } }",
            new { n = name, r = replicas, ns })).GetProperty("createPod").GetProperty("id").GetString()!);

    /// <summary>The n-th pod's namespace: a namespace's IPv4 overlay (a /23) holds 509 microVMs, so big runs spread over several.</summary>
    public static string NamespaceFor(int n, int replicas) => $"ns{n * replicas / 500}";

    public static async Task WaitUntil(Func<Task<bool>> condition, string what, int seconds = 600)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(seconds)) throw new TimeoutException($"timed out waiting until {what}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var signal in _signals) signal.Dispose();
        await Host.DisposeAsync();
        await _postgres.StopAsync();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}

public static class Stats
{
    public static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    public static double P(IReadOnlyList<double> sorted, int percentile) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(percentile / 100.0 * sorted.Count) - 1, 0, sorted.Count - 1)];
}

public sealed record Options(string Benchmark, int Pods, int Concurrency, int Hosts, int Replicas, bool Durable, bool Help, int Events = 1_000_000, int Runs = 8,
    int Storage = 12, int Tenants = 250, int Live = 5_000, bool ReadModels = true, bool? Kvm = null, int Existing = 0)
{
    public static Options Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        var benchmark = args.FirstOrDefault(a => !a.StartsWith('-')) ?? "pods";
        var defaults = benchmark switch
        {
            "pods" => (pods: "500", hosts: "20"),
            "volumes" => (pods: "500", hosts: "4"),
            "kubectl" => (pods: "100", hosts: "20"),
            "nodes" => (pods: "1000", hosts: "4"),
            _ => (pods: "1000", hosts: "100"),
        };
        // The mesh benchmark's fleet: 1,000 pods of 5 replicas, 5,000 microVMs.
        var replicas = Get("--replicas", benchmark == "mesh" ? "5" : "1");
        return new Options(benchmark, int.Parse(Get("--pods", defaults.pods), CultureInfo.InvariantCulture), int.Parse(Get("--concurrency", "8"), CultureInfo.InvariantCulture),
            int.Parse(Get("--hosts", defaults.hosts), CultureInfo.InvariantCulture), int.Parse(replicas, CultureInfo.InvariantCulture), bool.Parse(Get("--durable", "true")),
            args.Contains("--help") || args.Contains("-h"), int.Parse(Get("--events", "1000000"), CultureInfo.InvariantCulture), int.Parse(Get("--runs", "8"), CultureInfo.InvariantCulture),
            int.Parse(Get("--storage", "12"), CultureInfo.InvariantCulture), int.Parse(Get("--tenants", "250"), CultureInfo.InvariantCulture),
            int.Parse(Get("--live", "5000"), CultureInfo.InvariantCulture), bool.Parse(Get("--read-models", "true")),
            Get("--kvm", "") is { Length: > 0 } kvm ? bool.Parse(kvm) : null, int.Parse(Get("--existing", "0"), CultureInfo.InvariantCulture));
    }
}
