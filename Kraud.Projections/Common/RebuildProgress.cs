using System.Diagnostics;

namespace Kraud.Projections.Common;

/// <summary>How far a rebuild got: events processed of how many, the rate so far and the time it still needs at that rate.</summary>
public sealed class RebuildProgress
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _processed;
    private long _total;

    public long Processed => Interlocked.Read(ref _processed);

    /// <summary>Events up to the log's high-water mark when the rebuild began (it goes on with later ones afterwards).</summary>
    public long Total => Interlocked.Read(ref _total);

    public TimeSpan Elapsed => _clock.Elapsed;

    public double EventsPerSecond => Elapsed.TotalSeconds > 0 ? Processed / Elapsed.TotalSeconds : 0;

    public TimeSpan? Eta => EventsPerSecond > 0 && Total >= Processed ? TimeSpan.FromSeconds((Total - Processed) / EventsPerSecond) : null;

    public void Begin(long total) => Interlocked.Exchange(ref _total, total);

    /// <summary>
    /// The rebuild ended: its time and rate stay as they were then. A running clock made a finished job's elapsed time
    /// grow and its rate fall with every later look (rebuildJob, and the bench that polls it).
    /// </summary>
    public void Finish() => _clock.Stop();

    public void Advance(long events) => Interlocked.Add(ref _processed, events);

    private readonly List<string> _stages = [];

    /// <summary>Where the time went, stage by stage (logged when the rebuild ends).</summary>
    public IReadOnlyList<string> Stages { get { lock (_stages) return [.. _stages]; } }

    public void Stage(string what, TimeSpan took)
    {
        lock (_stages) _stages.Add($"{what} {took.TotalSeconds:F1} s");
    }

    public override string ToString() =>
        $"{Processed:N0} of {Total:N0} events, {EventsPerSecond:N0} events/s, ETA {(Eta is { } eta ? $"{eta.TotalSeconds:F0} s" : "?")}";
}
