using FastEndpoints;
using JasperFx.Events.Daemon;
using Kraud.Api.Common;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using MartenCoordinator = Marten.Events.Daemon.Coordination.IProjectionCoordinator;
using ProjectionLag = Kraud.Api.Common.ProjectionLag;

namespace Kraud.Api.Health;

public sealed record HealthResponse(string Status, bool Database, bool AsyncDaemon, long HighWaterMark, IReadOnlyList<ProjectionLag> Projections,
    string? Error);

/// <summary>
/// GET /health: is the database reachable (AspNetCore.HealthChecks.NpgSql, registered by <see cref="HealthSlice"/>), is the
/// async daemon running, and how far behind are async projections.
/// </summary>
public sealed class HealthEndpoint(KraudDatabase database, MartenCoordinator coordinator, HealthCheckService checks) : EndpointWithoutRequest<HealthResponse>
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
            var ok = daemon;
            await Send.ResponseAsync(new HealthResponse(ok ? "healthy" : "degraded", true, daemon, high, lags, ok ? null : "The async daemon is not running."),
                ok ? 200 : 503, ct);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            // Reachable a moment ago, gone now.
            await Send.ResponseAsync(new HealthResponse("unhealthy", false, daemon, 0, [], e.Message), 503, ct);
        }
    }
}
