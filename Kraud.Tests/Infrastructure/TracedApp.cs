using System.Collections;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A control plane whose finished spans land in memory (OpenTelemetry's in-memory exporter) and whose hosts are
/// Kraud.HostRuntime processes, which export theirs over OTLP to an <see cref="OtlpReceiver"/>.
/// </summary>
public sealed class TracedApp : KraudApp
{
    public SpanLog Spans { get; } = new();

    public override int HeartbeatTimeoutSeconds => 8;

    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Fleet:InProcess", "false"),
        ("Fleet:EnforceNPlus2", "false"),
        ("Telemetry:SampleIntervalMs", "300"),
    ];

    protected override void ConfigureServices(IServiceCollection services) =>
        services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(Spans));
}

/// <summary>Spans end on many threads at once; the in-memory exporter adds them to this collection under a lock.</summary>
public sealed class SpanLog : ICollection<Activity>
{
    private readonly List<Activity> _spans = [];

    public IReadOnlyList<Activity> Snapshot()
    {
        lock (_spans) return _spans.ToList();
    }

    public void Add(Activity item)
    {
        lock (_spans) _spans.Add(item);
    }

    public void Clear()
    {
        lock (_spans) _spans.Clear();
    }

    public bool Contains(Activity item)
    {
        lock (_spans) return _spans.Contains(item);
    }

    public void CopyTo(Activity[] array, int arrayIndex)
    {
        lock (_spans) _spans.CopyTo(array, arrayIndex);
    }

    public bool Remove(Activity item)
    {
        lock (_spans) return _spans.Remove(item);
    }

    public int Count
    {
        get
        {
            lock (_spans) return _spans.Count;
        }
    }

    public bool IsReadOnly => false;

    public IEnumerator<Activity> GetEnumerator() => Snapshot().GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

[CollectionDefinition(Name)]
public sealed class TelemetryCollection : ICollectionFixture<TracedApp>
{
    public const string Name = "Kraud with traces in memory and host runtime processes";
}
