using FastEndpoints;
using JasperFx.Events.Daemon;
using Kraud.Api.Common;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using MartenCoordinator = Marten.Events.Daemon.Coordination.IProjectionCoordinator;
using ProjectionLag = Kraud.Api.Common.ProjectionLag;

namespace Kraud.Api.Health;

/// <param name="AsyncDaemon">Some node of the cluster runs the async projections.</param>
/// <param name="Node">The node that answered.</param>
/// <param name="Nodes">The live control-plane nodes and the roles each holds.</param>
/// <param name="Handovers">Recent changes of who holds what, oldest first.</param>
public sealed record HealthResponse(string Status, bool Database, bool AsyncDaemon, long HighWaterMark, IReadOnlyList<ProjectionLag> Projections,
    string? Error, string? Node = null, IReadOnlyList<NodeStatus>? Nodes = null, IReadOnlyList<Handover>? Handovers = null);

/// <summary>
/// GET /health: is the database reachable (AspNetCore.HealthChecks.NpgSql, registered by <see cref="HealthSlice"/>), is the
/// async daemon running on some node, how far behind are async projections, and which node holds which role.
/// </summary>
public sealed class HealthEndpoint(KraudDatabase database, MartenCoordinator coordinator, HealthCheckService checks, ClusterView cluster, NodeIdentity identity)
    : EndpointWithoutRequest<HealthResponse>
{
    public override void Configure()
    {
        Get("/health");
        AllowAnonymous();
        Description(d => d.Produces<HealthResponse>(200).Produces<HealthResponse>(503));
        Summary(s => s.Summary = "Database reachability, async daemon state, projection lag, the control-plane nodes and their roles.");
    }

    public override async Task HandleAsync(CancellationToken ct)
    {
        bool daemon;
        try
        {
            daemon = coordinator.DaemonForMainDatabase().IsRunning;
        }
        catch (Exception e) when (e is InvalidOperationException or Wolverine.Runtime.Agents.DaemonNotRunningOnThisNodeException)
        {
            // Another node runs the projections (the cluster's view below says which), or none does yet.
            daemon = false;
        }
        var report = await checks.CheckHealthAsync(c => c.Name == HealthSlice.Database, ct);
        if (report.Status != HealthStatus.Healthy)
        {
            var entry = report.Entries[HealthSlice.Database];
            await Send.ResponseAsync(new HealthResponse("unhealthy", false, daemon, 0, [], entry.Exception?.Message ?? entry.Description ?? "The database does not answer."),
                503, ct);
            return;
        }
        try
        {
            await using var connection = new NpgsqlConnection(database.ConnectionString);
            await connection.OpenAsync(ct);
            var (high, lags) = await ProjectionProgress.ReadAsync(connection, ct);
            var (nodes, handovers) = await cluster.ReadAsync(ct);
            // The projections run on one node of the cluster: this one, or another that holds them.
            var ok = daemon || nodes.Any(ClusterView.RunsProjections);
            await Send.ResponseAsync(new HealthResponse(ok ? "healthy" : "degraded", true, ok, high, lags, ok ? null : "The async daemon is not running.",
                identity.Name, nodes, handovers), ok ? 200 : 503, ct);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            // Reachable a moment ago, gone now.
            await Send.ResponseAsync(new HealthResponse("unhealthy", false, daemon, 0, [], e.Message), 503, ct);
        }
    }
}
