using Alba;
using Kraud.Api.Health;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// Several control-plane nodes (Alba hosts of the real application) on one database, and two host runtime processes of
/// their own in a zone of their own: no node runs a fleet, so any node can stop while the hosts run on. <see cref="KraudApp.Host"/>
/// is always a live node: when a spec stops it, another takes its place.
/// </summary>
public sealed class ClusterApp : KraudApp
{
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..6];
    private readonly List<(string Name, IAlbaHost Host)> _nodes = [];
    private readonly List<HostProcess> _hosts = [];

    public string Zone { get; } = $"cl-{Guid.NewGuid():N}"[..10];

    public IReadOnlyList<HostProcess> Hosts => _hosts;

    public override int HeartbeatTimeoutSeconds => 8;

    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Fleet:InProcess", "false"),
        ("Fleet:EnforceNPlus2", "false"),
        // The first node's name; nodes started later name themselves (the later setting wins).
        ("Kraud:NodeId", NodeName("a")),
    ];

    public string NodeName(string node) => $"{node}-{_suffix}";

    /// <summary>The live nodes.</summary>
    public IReadOnlyList<(string Name, IAlbaHost Host)> Nodes => _nodes;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _nodes.Add((NodeName("a"), Host));
        _hosts.Add(HostProcess.Start(this, $"cl-h1-{_suffix}", Zone));
        _hosts.Add(HostProcess.Start(this, $"cl-h2-{_suffix}", Zone));
        foreach (var host in _hosts) await host.WaitUntilRegisteredAsync(this);
    }

    /// <summary>Starts one more node on the same database under this name.</summary>
    public async Task<IAlbaHost> StartNodeAsync(string node)
    {
        // Its own embedded registry (Docker Hub's mirror for the images specs name) in a directory of its own.
        var host = await BootNodeAsync([("Kraud:NodeId", NodeName(node)),
            ("Images:EmbeddedRegistry:Directory", Path.Combine(StateDirectory, $"registry-{node}"))]);
        _nodes.Add((NodeName(node), host));
        return host;
    }

    /// <summary>Starts a Kraud.Api process as one more node of this database (no fleet of its own), for specs that kill or SIGTERM it.</summary>
    public ApiNodeProcess StartNodeProcess(string name) => ApiNodeProcess.Start(ConnectionString, name, OperatorToken, new Dictionary<string, string>
    {
        ["Fleet__InProcess"] = "false",
        ["Fleet__EnforceNPlus2"] = "false",
        ["Fleet__HeartbeatIntervalMs"] = HeartbeatIntervalMs.ToString(CultureInfo.InvariantCulture),
    });

    /// <summary>Stops a node as SIGTERM stops it (its roles handed back); answers the node that stands in for it as <see cref="KraudApp.Host"/>.</summary>
    public async Task StopNodeAsync(IAlbaHost node)
    {
        await node.StopAsync();
        var index = _nodes.FindIndex(n => n.Host == node);
        var stopped = _nodes[index];
        _nodes.RemoveAt(index);
        _stopped.Add(stopped.Host);
        if (Host == node) Host = _nodes[0].Host;
    }

    private readonly List<IAlbaHost> _stopped = [];

    /// <summary>What <c>GET /health</c> of this node says about the cluster.</summary>
    public static async Task<HealthResponse> HealthAsync(IAlbaHost node)
    {
        var result = await node.Scenario(s =>
        {
            s.Get.Url("/health");
            s.IgnoreStatusCode();
        });
        var body = await result.ReadAsTextAsync();
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<HealthResponse>(body, System.Text.Json.JsonSerializerOptions.Web)!;
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidOperationException($"/health answered {result.Context.Response.StatusCode}: {body}", e);
        }
    }

    public override async Task DisposeAsync()
    {
        foreach (var host in _hosts) await host.DisposeAsync();
        foreach (var (_, node) in _nodes.Where(n => n.Host != Host)) await node.DisposeAsync();
        foreach (var node in _stopped) await node.DisposeAsync();
        await base.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterApp>
{
    public const string Name = "Kraud with several control-plane nodes";
}
