using FastEndpoints;
using JasperFx.Events.Daemon;
using Kraud.Api.Configuration;
using Npgsql;
using MartenCoordinator = Marten.Events.Daemon.Coordination.IProjectionCoordinator;

namespace Kraud.Api.Health;

public sealed record ProjectionLag(string Name, long Position, long Behind);

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

/// <summary>How far each async projection is behind the event log (read by /health and the kraud.projection.lag gauge).</summary>
public static class ProjectionProgress
{
    public static async Task<(long HighWaterMark, List<ProjectionLag> Lags)> ReadAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        long high;
        await using (var max = new NpgsqlCommand($"select coalesce(max(seq_id), 0) from {MartenSetup.Schema}.mt_events", connection))
            high = Convert.ToInt64(await max.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
        var lags = new List<ProjectionLag>();
        await using var cmd = new NpgsqlCommand($"select name, last_seq_id from {MartenSetup.Schema}.mt_event_progression where name like '%:%' order by name", connection);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            lags.Add(new ProjectionLag(reader.GetString(0), reader.GetInt64(1), Math.Max(0, high - reader.GetInt64(1))));
        return (high, lags);
    }
}
