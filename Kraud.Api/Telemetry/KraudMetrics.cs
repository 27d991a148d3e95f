using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Kraud.Api.Telemetry;

/// <summary>
/// Kraud's own instruments (meter "Kraud", scraped at /metrics): what the scheduler and the host runtimes do as it
/// happens, and gauges of the platform's state sampled every few seconds by <see cref="MetricsSampler"/>.
/// </summary>
public sealed class KraudMetrics
{
    public const string MeterName = "Kraud";
    public const string TraceSourceName = "Kraud";

    /// <summary>Kraud's spans in the control plane (the scheduler's placement of one pod inside a batch).</summary>
    public static readonly ActivitySource Tracing = new(TraceSourceName);

    private volatile Snapshot _snapshot = new(new Dictionary<string, long>(), new Dictionary<string, long>(), new Dictionary<string, long>(), 0);

    public Counter<long> Placements { get; }
    public Histogram<double> PlacementLatency { get; }
    public Histogram<double> BootLatency { get; }
    public Counter<long> Heartbeats { get; }

    public KraudMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        Placements = meter.CreateCounter<long>("kraud.scheduler.placements", "{replica}", "MicroVMs the scheduler placed on a host");
        PlacementLatency = meter.CreateHistogram<double>("kraud.scheduler.placement.duration", "s",
            "From a pod's request for a host to the scheduler's decision");
        BootLatency = meter.CreateHistogram<double>("kraud.microvm.boot.duration", "s", "A microVM's boot as its host runtime measured it");
        Heartbeats = meter.CreateCounter<long>("kraud.host.heartbeats", "{heartbeat}", "Heartbeats received from host runtimes");
        meter.CreateObservableGauge("kraud.pods", () => _snapshot.Pods.Select(p => new Measurement<long>(p.Value, new KeyValuePair<string, object?>("state", p.Key))),
            "{pod}", "Pods by state");
        meter.CreateObservableGauge("kraud.hosts", () => _snapshot.Hosts.Select(p => new Measurement<long>(p.Value, new KeyValuePair<string, object?>("state", p.Key))),
            "{host}", "Hosts by state");
        meter.CreateObservableGauge("kraud.projection.lag", () => _snapshot.ProjectionLag.Select(p => new Measurement<long>(p.Value, new KeyValuePair<string, object?>("projection", p.Key))),
            "{event}", "Events an async projection is behind the event log");
        meter.CreateObservableGauge("kraud.outbox.depth", () => _snapshot.OutboxDepth, "{message}", "Messages waiting in the durable outbox");
    }

    public void Update(Snapshot snapshot) => _snapshot = snapshot;

    public sealed record Snapshot(IReadOnlyDictionary<string, long> Pods, IReadOnlyDictionary<string, long> Hosts,
        IReadOnlyDictionary<string, long> ProjectionLag, long OutboxDepth);
}
