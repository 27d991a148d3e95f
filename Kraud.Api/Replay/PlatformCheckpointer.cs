using Kraud.Api.Common;
using Kraud.Projections.Common;
using Kraud.Projections.Replay;
using Marten;
using Npgsql;

namespace Kraud.Api.Replay;

/// <summary>Replay:… in configuration.</summary>
public sealed class ReplayOptions
{
    public const string Section = "Replay";

    /// <summary>A checkpoint of the platform projection after this many events…</summary>
    public int CheckpointEveryEvents { get; set; } = 2_500;

    /// <summary>…or when events wait and the last checkpoint is older than this.</summary>
    public double CheckpointEveryMinutes { get; set; } = 10;
}

/// <summary>
/// Keeps the platform projection's checkpoints up with the log: every second it folds the events up to the async
/// daemon's high-water mark (below which no transaction is still open, so none is skipped). A rebuild takes the same
/// lock, clears the checkpoints and folds from event 0, or from the cut of archived events removed from the log.
/// </summary>
public sealed class PlatformCheckpointer(IDocumentStore store, KraudDatabase database, ReplayOptions options, TimeProvider time, ArchiveBoundary boundary,
    ILogger<PlatformCheckpointer> logger) : BackgroundService
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public PlatformCheckpoints Checkpoints { get; } = new(store, database.ConnectionString, KraudDatabase.Schema);

    private PlatformCheckpointProjection? _projection;

    private PlatformCheckpointProjection Projection => _projection ??= new PlatformCheckpointProjection(Checkpoints,
        Math.Max(1, options.CheckpointEveryEvents), TimeSpan.FromMinutes(options.CheckpointEveryMinutes), time);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Checkpoints.EnsureSchemaAsync(stoppingToken);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await _gate.WaitAsync(stoppingToken);
            try
            {
                await Projection.CatchUpAsync(await HighWaterMarkAsync(stoppingToken), null, stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Projection.Reset();
                logger.LogError(e, "Writing a checkpoint of the platform projection failed; the next round resumes from the last one stored");
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    public async Task RebuildAsync(RebuildProgress progress, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            await Checkpoints.EnsureSchemaAsync(ct);
            await Projection.RebuildAsync(await HighWaterMarkAsync(ct), await boundary.CheckpointFloorAsync(ct), progress, ct);
        }
        catch
        {
            Projection.Reset();
            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The daemon's high-water mark: every event at or below it is committed, and every gap below it is for good.</summary>
    public async Task<long> HighWaterMarkAsync(CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(
            $"select coalesce((select last_seq_id from {KraudDatabase.Schema}.mt_event_progression where name = 'HighWaterMark'), 0)", connection);
        try
        {
            return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0; // the daemon has not made its table yet
        }
    }
}
