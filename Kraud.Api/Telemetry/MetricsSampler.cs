using Kraud.Api.Common;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Marten;
using Npgsql;
using Wolverine.Runtime;

namespace Kraud.Api.Telemetry;

/// <summary>
/// Reads the platform's state for the gauges every Telemetry:SampleIntervalMs (5 s): a scrape never waits on the
/// database, and the database is asked once per interval however many scrapers there are.
/// </summary>
public sealed class MetricsSampler(KraudMetrics metrics, IDocumentStore store, KraudDatabase database, IWolverineRuntime wolverine,
    IConfiguration configuration, TimeProvider time, ILogger<MetricsSampler> logger) : Common.PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromMilliseconds(configuration.GetValue("Telemetry:SampleIntervalMs", 5000));

    protected override string FailureMessage => "Sampling the platform's metrics failed";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var pods = (await session.Query<PodView>().Select(p => p.State).ToListAsync(ct))
            .GroupBy(s => Gql.Enums.Name(s)).ToDictionary(g => g.Key, g => (long)g.Count());
        var hosts = (await session.Query<HostView>().Select(h => h.State).ToListAsync(ct))
            .GroupBy(s => Gql.Enums.Name(s)).ToDictionary(g => g.Key, g => (long)g.Count());
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        var (_, lags) = await ProjectionProgress.ReadAsync(connection, ct);
        var counts = await wolverine.Storage.Admin.FetchCountsAsync();
        metrics.Update(new KraudMetrics.Snapshot(pods, hosts, lags.ToDictionary(l => l.Name, l => l.Behind), counts.Outgoing));
    }
}
