using System.Globalization;

namespace Kraud.Bench;

/// <summary>
/// The machine's 1-minute load average, sampled every 5 s while a long benchmark runs. The machine is shared, so a
/// figure means little without the load it was measured under; each phase gets the range seen while it ran.
/// </summary>
public sealed class LoadAverage : IDisposable
{
    private readonly Timer _timer;
    private readonly Lock _lock = new();
    private readonly List<(string Phase, double Min, double Max)> _phases = [];
    private double _min = double.MaxValue, _max = double.MinValue;

    public LoadAverage() => _timer = new Timer(_ => Sample(), null, TimeSpan.Zero, TimeSpan.FromSeconds(5));

    public IReadOnlyList<(string Phase, double Min, double Max)> Phases
    {
        get { lock (_lock) return [.. _phases]; }
    }

    public static double Now() => double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);

    /// <summary>Ends a phase: the range since the previous one ended, including the load at this instant.</summary>
    public string EndPhase(string phase)
    {
        Sample();
        lock (_lock)
        {
            _phases.Add((phase, _min, _max));
            var range = Format(_min, _max);
            _min = double.MaxValue;
            _max = double.MinValue;
            return range;
        }
    }

    public static string Format(double min, double max) =>
        min.ToString("F1", CultureInfo.InvariantCulture) + (max - min < 0.05 ? "" : "–" + max.ToString("F1", CultureInfo.InvariantCulture));

    private void Sample()
    {
        var load = Now();
        lock (_lock)
        {
            _min = Math.Min(_min, load);
            _max = Math.Max(_max, load);
        }
    }

    public void Dispose() => _timer.Dispose();
}
