using GraphQL.Telemetry;
using Kraud.Api.Common;
using Kraud.Api.Telemetry;
using Kraud.Domain.Access;
using Npgsql;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using HostTelemetry = Kraud.HostRuntime.Configuration.TelemetrySetup;

namespace Kraud.Api.Configuration;

/// <summary>
/// OpenTelemetry for the control plane. Traces: ASP.NET Core, GraphQL execution, Npgsql, Marten, Wolverine, Kraud's
/// scheduler and the in-process host runtimes, rooted at requests (<see cref="HostRuntime.Configuration.RequestRootedSampler"/>).
/// Metrics: Kraud's own (<see cref="KraudMetrics"/>), ASP.NET Core's and Wolverine's, scraped at /metrics by operators.
/// Logs carry the trace and span id (console scopes). OTLP export of all three only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
/// </summary>
public static class TelemetrySetup
{
    public const string MetricsPath = "/metrics";

    public static void AddKraudTelemetry(this WebApplicationBuilder builder)
    {
        var otlp = HostTelemetry.OtlpConfigured(builder.Configuration);
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        if (otlp) builder.Logging.AddOpenTelemetry(o => o.AddOtlpExporter());

        builder.Services.AddSingleton<KraudMetrics>();
        builder.Services.AddHostedService<MetricsSampler>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("kraud-api"))
            .WithTracing(t =>
            {
                t.SetSampler(new HostRuntime.Configuration.RequestRootedSampler())
                    .AddAspNetCoreInstrumentation(o => o.Filter = http => !http.Request.Path.StartsWithSegments(MetricsPath, StringComparison.OrdinalIgnoreCase)
                                                                          && !http.Request.Path.StartsWithSegments("/health", StringComparison.OrdinalIgnoreCase))
                    .AddSource(GraphQLTelemetryProvider.SourceName)
                    .AddNpgsql()
                    .AddSource("Marten", "Wolverine", KraudMetrics.TraceSourceName, HostTelemetry.HostRuntimeSource);
                if (otlp) t.AddOtlpExporter();
            })
            .WithMetrics(m =>
            {
                m.AddMeter(KraudMetrics.MeterName, "Wolverine:kraud-api", "Marten")
                    .AddAspNetCoreInstrumentation()
                    // Seconds: placement and boot take milliseconds to minutes.
                    .AddView("kraud.scheduler.placement.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] })
                    .AddView("kraud.microvm.boot.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120] })
                    .AddPrometheusExporter();
                if (otlp) m.AddOtlpExporter();
            });
    }

    /// <summary>
    /// GET /metrics in Prometheus' text format, for operators only (a scrape config sends an operator token as its
    /// bearer credentials): the fleet's size and load is not a tenant's business.
    /// </summary>
    public static void UseKraudMetricsEndpoint(this WebApplication app)
    {
        app.UseWhen(http => http.Request.Path.StartsWithSegments(MetricsPath, StringComparison.OrdinalIgnoreCase), branch => branch.Use(async (http, next) =>
        {
            var principal = await http.RequestServices.GetRequiredService<TokenAuthenticator>()
                .AuthenticateAsync(http.Request.Headers.Authorization.ToString(), http.RequestAborted);
            if (principal is null)
            {
                http.Response.StatusCode = StatusCodes.Status401Unauthorized;
                http.Response.Headers.WWWAuthenticate = "Bearer";
                await http.Response.WriteAsync("UNAUTHENTICATED: send an operator token: Authorization: Bearer <token>.\n");
                return;
            }
            if (principal.Role != Role.Operator)
            {
                http.Response.StatusCode = StatusCodes.Status403Forbidden;
                await http.Response.WriteAsync("FORBIDDEN: metrics are for operators.\n");
                return;
            }
            await next(http);
        }));
        app.MapPrometheusScrapingEndpoint(MetricsPath);
    }
}
