namespace Kraud.Api.Common;

/// <summary>
/// A background loop that does one round every interval. A round that throws is logged and the next one still runs on
/// time: these loops are what heals the platform, and one that stopped would heal nothing until a restart.
/// </summary>
public abstract class PeriodicRound(TimeProvider time, ILogger logger) : BackgroundService
{
    protected TimeProvider Time => time;

    protected abstract TimeSpan Interval { get; }

    /// <summary>Logged with the exception of a round that failed.</summary>
    protected abstract string FailureMessage { get; }

    protected abstract Task RoundAsync(CancellationToken ct);

    protected sealed override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await RoundAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
#pragma warning disable CA2254 // each round names itself; the message is a constant of its class
                logger.LogError(e, FailureMessage);
#pragma warning restore CA2254
            }
        }
    }
}
