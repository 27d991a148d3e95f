using Npgsql;

namespace Kraud.Api.Common;

public sealed record ProjectionLag(string Name, long Position, long Behind);

/// <summary>How far each async projection is behind the event log (read by /health and the kraud.projection.lag gauge).</summary>
public static class ProjectionProgress
{
    public static async Task<(long HighWaterMark, List<ProjectionLag> Lags)> ReadAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        long high;
        await using (var max = new NpgsqlCommand($"select coalesce(max(seq_id), 0) from {KraudDatabase.Schema}.mt_events", connection))
            high = Convert.ToInt64(await max.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
        var lags = new List<ProjectionLag>();
        await using var cmd = new NpgsqlCommand($"select name, last_seq_id from {KraudDatabase.Schema}.mt_event_progression where name like '%:%' order by name", connection);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            lags.Add(new ProjectionLag(reader.GetString(0), reader.GetInt64(1), Math.Max(0, high - reader.GetInt64(1))));
        return (high, lags);
    }
}
