using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Kraud.Bench;

/// <summary>
/// Messages Wolverine handled, by type, from its own counter (wolverine-messages-succeeded): where a pod's envelopes, and
/// so most of its transactions, go. The bench hosts the API and the simulated fleet in one process, so host commands count too.
/// </summary>
public sealed class MessageCounts : IDisposable
{
    private readonly MeterListener listener = new();
    private readonly ConcurrentDictionary<string, long> counts = new();

    public MessageCounts()
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name.StartsWith("Wolverine", StringComparison.Ordinal) && instrument.Name == "wolverine-messages-succeeded")
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) => Count(value, tags));
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) => Count(value, tags));
        listener.Start();
    }

    private void Count(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            if (tag.Key != "message.type") continue;
            var name = tag.Value?.ToString() ?? "?";
            counts.AddOrUpdate(name[(name.LastIndexOf('.') + 1)..], value, (_, n) => n + value);
            return;
        }
    }

    /// <summary>What was counted so far, and the counts start again from zero.</summary>
    public List<(string Type, long Count)> Take()
    {
        var taken = counts.ToArray();
        foreach (var (type, n) in taken) counts.AddOrUpdate(type, 0, (_, m) => m - n);
        return [.. taken.Where(t => t.Value > 0).Select(t => (t.Key, t.Value)).OrderByDescending(t => t.Item2)];
    }

    public void Dispose() => listener.Dispose();
}
