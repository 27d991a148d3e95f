using Kraud.Api.Common;
using Marten;
using Wolverine.Runtime;
using Wolverine.Runtime.Agents;

namespace Kraud.Api.Health;

/// <summary>One process of a control-plane node: its Wolverine identity, and when it started and stopped.</summary>
public sealed record ControlPlaneNode(Guid Id, string Name, int NodeNumber, DateTimeOffset Started, DateTimeOffset? Stopped = null);

/// <summary>Records this process under its node's name when it starts, and when it stops gracefully.</summary>
public sealed class NodeRegistration(NodeIdentity identity, IWolverineRuntime runtime, IDocumentStore store, TimeProvider time, ILogger<NodeRegistration> logger)
    : IHostedService
{
    private ControlPlaneNode? _self;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _self = new ControlPlaneNode(runtime.Options.UniqueNodeId, identity.Name, runtime.Options.Durability.AssignedNodeNumber, time.GetUtcNow());
        await using var session = store.LightweightSession();
        session.Store(_self);
        await session.SaveChangesAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_self is null) return;
        try
        {
            await using var session = store.LightweightSession();
            session.Store(_self with { Stopped = time.GetUtcNow() });
            await session.SaveChangesAsync(cancellationToken);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or Marten.Exceptions.MartenCommandException or OperationCanceledException or ObjectDisposedException)
        {
            // The node stops all the same; its record then shows it as started, and Wolverine's tables as gone.
            logger.LogWarning(e, "Could not record that node {Node} stopped", identity.Name);
        }
    }
}

/// <param name="Roles">What the node holds: <c>leader</c>, <c>scheduler</c>, the run-once rounds by name, and the async projections.</param>
public sealed record NodeStatus(string Id, DateTimeOffset Started, DateTimeOffset LastHeartbeat, IReadOnlyList<string> Roles);

/// <param name="Change">started, stopped (a role: given to or taken from the node; a node: started, stopped, ejected after it went silent), or leader.</param>
public sealed record Handover(DateTimeOffset At, string Node, string Change, string Role);

/// <summary>The cluster as Wolverine's node and assignment tables and its node log show it, under Kraud's node names.</summary>
public sealed class ClusterView(IWolverineRuntime runtime, IDocumentStore store, NodeIdentity identity) : IClusterNodes
{
    /// <summary>The roles of the async projections' agents start with this (one role per projection shard).</summary>
    public const string ProjectionRole = "projection:";

    public string Self => identity.Name;

    public static bool RunsProjections(NodeStatus node) => node.Roles.Any(r => r.StartsWith(ProjectionRole, StringComparison.Ordinal));

    public async Task<string?> ProjectionsHolderAsync(CancellationToken ct) => (await ReadAsync(ct)).Nodes.FirstOrDefault(RunsProjections)?.Id;

    /// <summary>How far back <c>/health</c> shows the log of handovers.</summary>
    public const int HistoryLength = 200;

    public async Task<(IReadOnlyList<NodeStatus> Nodes, IReadOnlyList<Handover> History)> ReadAsync(CancellationToken ct)
    {
        var persistence = runtime.Storage.Nodes;
        var state = await persistence.LoadNodeAgentStateAsync(ct);
        var records = await persistence.FetchRecentRecordsAsync(HistoryLength);
        await using var session = store.QuerySession();
        var known = await session.Query<ControlPlaneNode>().ToListAsync(ct);
        var byId = known.ToDictionary(n => n.Id);
        var byNumber = known.GroupBy(n => n.NodeNumber).ToDictionary(g => g.Key, g => g.OrderByDescending(n => n.Started).First().Name);

        var nodes = state.Nodes.OrderBy(n => n.AssignedNodeNumber)
            .Select(n => new NodeStatus(byId.TryGetValue(n.NodeId, out var k) ? k.Name : $"node-{n.AssignedNodeNumber}", n.Started, n.LastHealthCheck,
                n.ActiveAgents.Select(RoleName).OfType<string>().Order(StringComparer.Ordinal).ToList()))
            .ToList();
        var history = records
            .Where(r => r.RecordType is NodeRecordType.LeadershipAssumed or NodeRecordType.LeadershipLost or NodeRecordType.NodeStarted
                or NodeRecordType.DormantNodeEjected || (r.RecordType is NodeRecordType.AgentStarted or NodeRecordType.AgentStopped && AgentOf(r) is not null))
            .Select(r => new Handover(r.Timestamp, byNumber.TryGetValue(r.NodeNumber, out var name) ? name : $"node-{r.NodeNumber}", Change(r.RecordType),
                AgentOf(r) ?? ""))
            // A node that stops gracefully hands its roles back without a line in Wolverine's log: its own record says when.
            .Concat(known.Where(n => n.Stopped is not null).Select(n => new Handover(n.Stopped!.Value, n.Name, "stopped", "")))
            .OrderBy(h => h.At)
            .TakeLast(HistoryLength)
            .ToList();
        return (nodes, history);
    }

    /// <summary>The node log keeps the agent's address in the record's description (its AgentUri does not survive the table).</summary>
    private static string? AgentOf(NodeRecord record) =>
        record.RecordType is NodeRecordType.AgentStarted or NodeRecordType.AgentStopped && Uri.TryCreate(record.Description, UriKind.Absolute, out var agent)
            ? RoleName(agent)
            : null;

    private static string Change(NodeRecordType type) => type switch
    {
        NodeRecordType.AgentStarted or NodeRecordType.NodeStarted => "started",
        NodeRecordType.AgentStopped or NodeRecordType.NodeStopped => "stopped",
        NodeRecordType.DormantNodeEjected => "ejected",
        NodeRecordType.LeadershipAssumed => "leader",
        _ => "leadership-lost",
    };

    /// <summary>Kraud's name for a Wolverine agent; null for Wolverine's own bookkeeping (its durability agents).</summary>
    public static string? RoleName(Uri agent) => agent.Scheme switch
    {
        "wolverine" when agent == NodeAgentController.LeaderUri => "leader",
        ControlPlaneRoles.Scheme => agent.Host,
        "wolverine-listener" when agent.AbsolutePath.Trim('/') == SchedulerQueue.Name => "scheduler",
        "wolverine-listener" when agent.AbsolutePath.Trim('/') == SchedulerQueue.Volumes => "volume-scheduler",
        "wolverine-listener" => "listener:" + agent.AbsolutePath.Trim('/'),
        "event-subscriptions" => ProjectionRole + agent.AbsolutePath.Trim('/'),
        _ => null,
    };
}
