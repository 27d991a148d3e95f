using System.Diagnostics;
using Alba;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Telemetry;

/// <summary>Traces across processes and the metrics operators scrape.</summary>
[Collection(TelemetryCollection.Name)]
public sealed class TelemetrySpecs(TracedApp app)
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..12];

    private static Dictionary<string, string> ExportTo(OtlpReceiver receiver) => new()
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint,
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
    };

    [Fact]
    public async Task one_create_pod_is_one_trace_from_the_graphql_request_through_the_scheduler_to_the_host_runtime_process_and_back()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var zone = Unique("otel");
        await using var host = HostProcess.Start(app, Unique("h"), zone, environment: ExportTo(receiver));
        await host.WaitUntilRegisteredAsync(app);
        var tenant = await TenantScope.CreateAsync(app);

        var pod = await tenant.CreatePodAsync("traced", zone: zone);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 60);

        var placement = await Eventually.Get(() => Task.FromResult(app.Spans.Snapshot().FirstOrDefault(s =>
                s.OperationName == "kraud.scheduler.place" && (string?)s.GetTagItem("kraud.pod.id") == pod.Id())),
            s => s is not null, TimeSpan.FromSeconds(10), "the scheduler's span of the pod ended");
        var trace = placement!.TraceId;
        var apiSpans = app.Spans.Snapshot().Where(s => s.TraceId == trace).ToList();
        var request = Assert.Single(apiSpans, s => s.Kind == ActivityKind.Server && s.Source.Name == "Microsoft.AspNetCore");
        Assert.Equal(default, request.ParentSpanId); // the trace starts at the GraphQL request
        Assert.Contains(apiSpans, s => s.Source.Name == "GraphQL" && s.ParentSpanId == request.SpanId);
        foreach (var source in new[] { "Wolverine", "Npgsql", "Marten" }) Assert.Contains(apiSpans, s => s.Source.Name == source);

        // The host runtime process exported its boot under the same trace id, continuing a span of the control plane.
        var boot = await Eventually.Get(() => Task.FromResult(receiver.Spans.FirstOrDefault(s => s.Name == "kraud.microvm.boot" && s.TraceId == trace.ToHexString())),
            s => s is not null, TimeSpan.FromSeconds(30), "the host runtime exported its boot span");
        Assert.Equal($"kraud-host-{host.Name}", boot!.Service);
        // The host's span that continued the control plane's (its Wolverine handler span, around the boot) ends after the boot
        // and may come in a later export batch; the control plane's span it continued may end after the host exported.
        List<ReceivedSpan> HostSpans() => receiver.Spans.Where(s => s.TraceId == trace.ToHexString()).ToList();
        await Eventually.Until(() => Task.FromResult(app.Spans.Snapshot().Any(s => s.TraceId == trace && HostSpans().Any(h => h.ParentSpanId == s.SpanId.ToHexString()))),
            TimeSpan.FromSeconds(20), () => "a host span's parent is a span of the control plane; the control plane's spans of the trace: " + string.Join(", ",
                app.Spans.Snapshot().Where(s => s.TraceId == trace).Select(s => $"{s.Source.Name}/{s.OperationName} {s.SpanId.ToHexString()}<-{s.ParentSpanId.ToHexString()}"))
                + "; the host's: " + string.Join(", ", HostSpans().Select(s => $"{s.Name} {s.SpanId}<-{s.ParentSpanId}")));

        // ...and the control plane handled the host's report in that trace, as a child of a span of the host process.
        await Eventually.Until(() => Task.FromResult(app.Spans.Snapshot().Any(s => s.TraceId == trace && HostSpans().Any(h => h.SpanId == s.ParentSpanId.ToHexString()))),
            TimeSpan.FromSeconds(30), "the control plane continued the trace from the host's report");
    }

    [Fact]
    public async Task metrics_are_for_operators_and_show_pods_placements_latencies_projection_lag_outbox_and_heartbeats()
    {
        var zone = Unique("prom");
        await using var host = HostProcess.Start(app, Unique("h"), zone);
        await host.WaitUntilRegisteredAsync(app);
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("measured", zone: zone);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 60);

        await app.Host.Scenario(s =>
        {
            s.Get.Url("/metrics");
            s.StatusCodeShouldBe(401);
        });
        await app.Host.Scenario(s =>
        {
            s.Get.Url("/metrics");
            s.WithRequestHeader("Authorization", $"Bearer {tenant.Token}");
            s.StatusCodeShouldBe(403);
        });

        // The audit chain's lag is there once its agent has committed a first batch: on a fresh database that can come after
        // the pod runs (a fresh-clone run sampled before it, 13 s in).
        var text = await Eventually.Get(async () =>
            {
                var result = await app.Host.Scenario(s =>
                {
                    s.Get.Url("/metrics");
                    s.WithRequestHeader("Authorization", $"Bearer {KraudApp.OperatorToken}");
                });
                return await result.ReadAsTextAsync();
            }, t => t.Contains("kraud_pods{") && t.Contains("state=\"RUNNING\"") && t.Contains("kraud_microvm_boot_duration_seconds_bucket")
                    && t.Contains("projection=\"AuditChain:All\""),
            TimeSpan.FromSeconds(30), "the gauges were sampled");
        foreach (var metric in new[]
                 {
                     "kraud_pods{", "kraud_hosts{", "kraud_scheduler_placements_total", "kraud_scheduler_placement_duration_seconds_bucket",
                     "kraud_microvm_boot_duration_seconds_bucket", "kraud_projection_lag{", "projection=\"AuditChain:All\"", "kraud_outbox_depth", "kraud_host_heartbeats_total{",
                 })
            Assert.True(text.Contains(metric), $"{metric} is missing from /metrics:\n{text}");
    }
}
