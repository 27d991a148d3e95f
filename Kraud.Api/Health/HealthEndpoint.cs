using FastEndpoints;
using JasperFx.Events.Daemon;
using Kraud.Api.Common;
using Npgsql;
using MartenCoordinator = Marten.Events.Daemon.Coordination.IProjectionCoordinator;
using ProjectionLag = Kraud.Api.Common.ProjectionLag;

namespace Kraud.Api.Health;

public sealed record HealthResponse(string Status, bool Database, bool AsyncDaemon, long HighWaterMark, IReadOnlyList<ProjectionLag> Projections,
    string? Error);

/// <summary>GET /health: is the database reachable, is the async daemon running, and how far behind are async projections.</summary>
public sealed class HealthEndpoint(KraudDatabase database, MartenCoordinator coordinator) : EndpointWithoutRequest<HealthResponse>
{
    public override void Configure()
    {
        Get("/health");
        AllowAnonymous();
        Description(d => d.Produces<HealthResponse>(200).Produces<HealthResponse>(503));
        Summary(s => s.Summary = "Database reachability, async daemon state and projection lag.");
    }

    public override async Task HandleAsync(CancellationToken ct)
    {
        bool daemon;
        try
        {
            daemon = coordinator.DaemonForMainDatabase().IsRunning;
        }
        catch (InvalidOperationException)
        {
            daemon = false;
        }
        try
        {
            await using var connection = new NpgsqlConnection(database.ConnectionString);
            await connection.OpenAsync(ct);
            var (high, lags) = await ProjectionProgress.ReadAsync(connection, ct);
            var ok = daemon;
            await Send.ResponseAsync(new HealthResponse(ok ? "healthy" : "degraded", true, daemon, high, lags, ok ? null : "The async daemon is not running."),
                ok ? 200 : 503, ct);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            await Send.ResponseAsync(new HealthResponse("unhealthy", false, daemon, 0, [], e.Message), 503, ct);
        }
    }
}
