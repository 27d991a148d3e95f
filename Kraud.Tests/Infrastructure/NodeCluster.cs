using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Kraud.Api.Health;
using Kraud.Api.Idempotency;

namespace Kraud.Tests.Infrastructure;

/// <summary>One GraphQL answer over real HTTP: status, body, and whether the Idempotency-Key replayed a first answer.</summary>
public sealed record HttpGqlAnswer(int Status, string Body, bool Replayed)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    public bool HasErrors => Json.TryGetProperty("errors", out _);

    public string? Code => HasErrors && Json.GetProperty("errors")[0].TryGetProperty("extensions", out var x) && x.TryGetProperty("code", out var c) ? c.GetString() : null;

    public JsonElement Data => HasErrors ? throw new InvalidOperationException($"GraphQL errors ({Status}): {Body}") : Json.GetProperty("data");
}

/// <summary>
/// Several Kraud.Api processes (nodes 1…N, each named <c>n{number}-{suffix}</c>, no fleet of their own) and standalone
/// host runtime processes in a zone of their own, all on one database, and a client that speaks to each node over real
/// HTTP. Rolling-restart specs and the benchmark's <c>nodes</c> run on it (the benchmark compiles this file too).
/// </summary>
public sealed class NodeCluster : IAsyncDisposable
{
    public const string OperatorToken = "krd_cluster_operator_token_0123456789";

    /// <summary>Host runtimes beat every half second; a host is FAILED after 8 silent seconds (a busy 2-core machine starts them cold).</summary>
    private const string HeartbeatIntervalMs = "500";

    private readonly string _suffix = Guid.NewGuid().ToString("N")[..6];
    private readonly ApiNodeProcess?[] _nodes;
    private readonly Uri?[] _addresses;
    private readonly List<ApiNodeProcess> _gone = [];
    private readonly List<HostProcess> _hosts = [];

    public string ConnectionString { get; }
    public string StateDirectory { get; } = Path.Combine(Path.GetTempPath(), $"kraud-cluster-{Guid.NewGuid():N}");
    public string Zone { get; }
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    private NodeCluster(string connectionString, int nodes)
    {
        ConnectionString = connectionString;
        _nodes = new ApiNodeProcess?[nodes];
        _addresses = new Uri?[nodes];
        Zone = $"nc-{_suffix}";
        Directory.CreateDirectory(StateDirectory);
    }

    /// <summary>Node <paramref name="number"/> (1-based) as it runs now; null while it is down.</summary>
    public ApiNodeProcess? Node(int number) => _nodes[number - 1];

    public int NodeCount => _nodes.Length;

    public string NodeName(int number) => $"n{number.ToString(CultureInfo.InvariantCulture)}-{_suffix}";

    public IReadOnlyList<HostProcess> Hosts => _hosts;

    /// <summary>
    /// Starts node 1 (it creates the schema), then the other <paramref name="running"/> − 1 nodes and <paramref name="hosts"/>
    /// host runtimes side by side, and waits until every node serves and every host is READY.
    /// </summary>
    public static async Task<NodeCluster> StartAsync(string connectionString, int nodes, int hosts, int hostCpu, int hostMemoryMiB, int? running = null)
    {
        var cluster = new NodeCluster(connectionString, nodes);
        try
        {
            await cluster.StartNodeAsync(1);
            var starting = Enumerable.Range(2, (running ?? nodes) - 1).Select(cluster.StartNodeAsync).ToList();
            for (var h = 1; h <= hosts; h++)
            {
                cluster._hosts.Add(HostProcess.Start(connectionString, cluster.StateDirectory, new Dictionary<string, string>(), $"{cluster.Zone}-h{h.ToString(CultureInfo.InvariantCulture)}",
                    cluster.Zone, cpu: hostCpu, memoryMiB: hostMemoryMiB, environment: new Dictionary<string, string> { ["Fleet__HeartbeatIntervalMs"] = HeartbeatIntervalMs }));
            }
            await Task.WhenAll(starting);
            await cluster.WaitForHostsAsync(TimeSpan.FromSeconds(120));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Where node <paramref name="number"/> listens (it keeps its address across restarts), as a client or load balancer knows it.</summary>
    public Uri Address(int number) => _addresses[number - 1] ?? throw new InvalidOperationException($"Node {number} never started.");

    /// <summary>
    /// Starts node <paramref name="number"/> (again, after a kill or a stop: same name and address, fresh process) and
    /// waits until it serves.
    /// </summary>
    public async Task<Uri> StartNodeAsync(int number)
    {
        if (_nodes[number - 1] is { HasExited: false }) throw new InvalidOperationException($"Node {number} is running.");
        if (_nodes[number - 1] is { } old) _gone.Add(old);
        var node = ApiNodeProcess.Start(ConnectionString, NodeName(number), OperatorToken, new Dictionary<string, string>
        {
            ["Fleet__InProcess"] = "false",
            ["Fleet__EnforceNPlus2"] = "false",
            ["Fleet__HeartbeatIntervalMs"] = HeartbeatIntervalMs,
            ["Fleet__HeartbeatTimeoutSeconds"] = "8",
            // Each node resolves images in a registry of its own (Docker Hub's mirror; no internet here): a node that
            // dies takes no other node's image resolution with it.
            ["Images__EmbeddedRegistry__Enabled"] = "true",
            ["Images__EmbeddedRegistry__Seed__0"] = Image,
        }, _addresses[number - 1]);
        _nodes[number - 1] = node;
        return _addresses[number - 1] = await node.WaitUntilServingAsync(TimeSpan.FromSeconds(120));
    }

    /// <summary>The image every pod of these runs asks for.</summary>
    public const string Image = "nginx:1.27";

    /// <summary>SIGKILL: node <paramref name="number"/> dies as a crashed machine would.</summary>
    public async Task KillNodeAsync(int number)
    {
        var node = _nodes[number - 1] ?? throw new InvalidOperationException($"Node {number} is not running.");
        _nodes[number - 1] = null;
        _gone.Add(node);
        await node.KillAsync();
    }

    /// <summary>SIGTERM, as a rolling restart stops node <paramref name="number"/>; answers how long it took to exit and its exit code.</summary>
    public async Task<(TimeSpan Took, int ExitCode)> TerminateNodeAsync(int number, TimeSpan within)
    {
        var node = _nodes[number - 1] ?? throw new InvalidOperationException($"Node {number} is not running.");
        _nodes[number - 1] = null;
        _gone.Add(node);
        var took = await node.TerminateAsync(within);
        return (took, node.ExitCode);
    }

    /// <summary>The nodes that run and listen now, by number.</summary>
    public IReadOnlyList<(int Number, Uri Url)> Serving =>
        _nodes.Select((n, i) => (Number: i + 1, Node: n)).Where(x => x.Node is { HasExited: false } && x.Node.IsServing)
            .Select(x => (x.Number, x.Node!.Url)).ToList();

    /// <summary>POSTs a GraphQL request to a node, with an Idempotency-Key when given.</summary>
    public async Task<HttpGqlAnswer> PostAsync(Uri node, string token, string query, object? variables = null, string? idempotencyKey = null,
        CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node, "/graphql"))
        {
            Content = new StringContent(JsonSerializer.Serialize(new { query, variables }), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (idempotencyKey is not null) request.Headers.Add(IdempotentMutations.Header, idempotencyKey);
        using var response = await Http.SendAsync(request, ct);
        var replayed = response.Headers.TryGetValues(IdempotentMutations.ReplayedHeader, out var values) && values.Contains("true");
        return new HttpGqlAnswer((int)response.StatusCode, await response.Content.ReadAsStringAsync(ct), replayed);
    }

    /// <summary>A query that must succeed, on any serving node.</summary>
    public async Task<JsonElement> QueryAsync(string token, string query, object? variables = null)
    {
        var node = Serving.FirstOrDefault();
        if (node.Url is null) throw new InvalidOperationException("No node serves.");
        return (await PostAsync(node.Url, token, query, variables)).Data;
    }

    /// <summary>The number of the node /health (of a serving node) shows holding the scheduler; null while no node does.</summary>
    public async Task<int?> SchedulerHolderAsync()
    {
        var health = await SomeHealthAsync();
        var holder = health.Nodes!.FirstOrDefault(n => n.Roles.Contains("scheduler"))?.Id;
        var number = Enumerable.Range(1, NodeCount).FirstOrDefault(n => NodeName(n) == holder);
        return number == 0 ? null : number;
    }

    /// <summary>Until /health lists exactly the serving nodes, each run-once role held by one of them.</summary>
    public async Task WaitUntilSettledAsync(TimeSpan within)
    {
        var by = DateTime.UtcNow + within;
        while (true)
        {
            var serving = Serving.Select(s => NodeName(s.Number)).Order(StringComparer.Ordinal).ToList();
            var health = await SomeHealthAsync();
            var nodes = health.Nodes!;
            if (nodes.Select(n => n.Id).Order(StringComparer.Ordinal).SequenceEqual(serving)
                && nodes.Count(n => n.Roles.Contains("scheduler")) == 1 && nodes.Count(n => n.Roles.Contains("leader")) == 1) return;
            if (DateTime.UtcNow > by)
                throw new TimeoutException($"The cluster did not settle on {string.Join(", ", serving)} within {within.TotalSeconds:F0} s: {JsonSerializer.Serialize(nodes)}");
            await Task.Delay(200);
        }
    }

    /// <summary>/health of the first serving node that answers one (a node may be going away under the question); tries for 10 s.</summary>
    public async Task<HealthResponse> SomeHealthAsync()
    {
        var by = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            foreach (var (_, url) in Serving)
            {
                try
                {
                    return await HealthAsync(url);
                }
                catch (HttpRequestException) when (DateTime.UtcNow < by)
                {
                    // The next node, or the next try.
                }
            }
            await Task.Delay(200);
        }
    }

    /// <summary>What <c>GET /health</c> of a node says about the cluster.</summary>
    public async Task<HealthResponse> HealthAsync(Uri node, CancellationToken ct = default)
    {
        // 503 (a projection behind, the daemon between nodes) still describes the cluster.
        using var response = await Http.GetAsync(new Uri(node, "/health"), ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        try
        {
            return JsonSerializer.Deserialize<HealthResponse>(body, JsonSerializerOptions.Web)!;
        }
        catch (JsonException e)
        {
            // A node that is starting or stopping may answer without a report: as good as no answer.
            throw new HttpRequestException($"/health of {node} answered {(int)response.StatusCode} without a report: '{body}'", e);
        }
    }

    /// <summary>A tenant of the run's own, with an ADMIN token.</summary>
    public async Task<string> CreateTenantAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..20];
        var id = (await QueryAsync(OperatorToken, "mutation($n: String!) { createTenant(input: {name: $n}) { id } }", new { n = name }))
            .GetProperty("createTenant").GetProperty("id").GetString();
        return (await QueryAsync(OperatorToken, "mutation($t: ID!) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"cluster run\"}) { token } }", new { t = id }))
            .GetProperty("createApiToken").GetProperty("token").GetString()!;
    }

    /// <summary>Every pod of the tenant: id, name, state, and its microVMs' ids and hosts.</summary>
    public async Task<List<JsonElement>> PodsAsync(string token)
    {
        var pods = new List<JsonElement>();
        string? after = null;
        while (true)
        {
            var page = (await QueryAsync(token, "query($after: String) { pods(first: 500, after: $after) { nodes { id name state instances { id hostId } } pageInfo { hasNextPage endCursor } } }",
                new { after })).GetProperty("pods");
            pods.AddRange(page.GetProperty("nodes").EnumerateArray().Select(p => p.Clone()));
            if (!page.GetProperty("pageInfo").GetProperty("hasNextPage").GetBoolean()) return pods;
            after = page.GetProperty("pageInfo").GetProperty("endCursor").GetString();
        }
    }

    private async Task WaitForHostsAsync(TimeSpan within)
    {
        var names = _hosts.Select(h => h.Name).ToHashSet();
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var hosts = (await QueryAsync(OperatorToken, "{ hosts { name state } }")).GetProperty("hosts").EnumerateArray()
                .Where(h => names.Contains(h.GetProperty("name").GetString()!)).ToList();
            if (hosts.Count == names.Count && hosts.All(h => h.GetProperty("state").GetString() == "READY")) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"The hosts {string.Join(", ", names)} were not all READY within {within.TotalSeconds:F0} s: " +
                                           $"{string.Join("; ", hosts)}\n{string.Join("\n---\n", _hosts.Select(h => h.OutputTail()))}");
            await Task.Delay(500);
        }
    }

    /// <summary>The last lines of every node process, for failure messages.</summary>
    public string NodesOutput() => string.Join("\n---\n", _nodes.OfType<ApiNodeProcess>().Concat(_gone).Select(n => $"[{n.Name}]\n{n.OutputTail()}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts) await host.DisposeAsync();
        foreach (var node in _nodes.OfType<ApiNodeProcess>().Concat(_gone)) await node.DisposeAsync();
        Http.Dispose();
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, recursive: true);
    }
}
