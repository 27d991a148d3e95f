using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Kraud.HostRuntime.Configuration;

/// <summary>
/// OpenTelemetry for host runtimes: their own spans (a microVM's boot) under the trace that asked for the work, which
/// Wolverine carries in the envelope across the PostgreSQL queue. Exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT
/// is set (the exporter reads the OTEL_* variables itself); without it nothing leaves the process.
/// </summary>
public static class TelemetrySetup
{
    public const string HostRuntimeSource = "Kraud.HostRuntime";
    public static readonly ActivitySource HostRuntime = new(HostRuntimeSource);

    public static bool OtlpConfigured(IConfiguration configuration) => !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    /// <summary>A standalone host runtime process: its spans and Wolverine's, its logs with the trace id.</summary>
    public static void AddHostRuntimeTelemetry(this IHostApplicationBuilder builder, string serviceName)
    {
        var otlp = OtlpConfigured(builder.Configuration);
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.IncludeScopes = true;
            o.SingleLine = true;
        });
        if (otlp) builder.Logging.AddOpenTelemetry(o => o.AddOtlpExporter());
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName))
            .WithTracing(t =>
            {
                t.SetSampler(new RequestRootedSampler()).AddSource(HostRuntimeSource, "Wolverine");
                if (otlp) t.AddOtlpExporter();
            });
    }
}

/// <summary>
/// Traces start where someone asked for something (an HTTP request, or a span of Kraud's own named kraud.*) and follow
/// it through every process; the polling, heartbeats and background rounds that belong to no request start none.
/// Without this every queue poll and heartbeat would be a trace of its own and bury the ones that matter.
/// </summary>
public sealed class RequestRootedSampler : Sampler
{
    public override SamplingResult ShouldSample(in SamplingParameters p)
    {
        if (p.ParentContext.TraceId != default)
            return new SamplingResult(p.ParentContext.TraceFlags.HasFlag(ActivityTraceFlags.Recorded) ? SamplingDecision.RecordAndSample : SamplingDecision.Drop);
        return new SamplingResult(p.Kind == ActivityKind.Server || p.Name.StartsWith("kraud.", StringComparison.Ordinal)
            ? SamplingDecision.RecordAndSample
            : SamplingDecision.Drop);
    }
}
