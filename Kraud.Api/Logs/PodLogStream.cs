using System.Text.Json;
using FastEndpoints;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Logs;

public sealed class PodLogStreamRequest
{
    public string Id { get; set; } = "";
    public bool Follow { get; set; }
    public int? Replica { get; set; }
    public int? Tail { get; set; }
    public DateTime? Since { get; set; }
}

/// <summary>
/// GET /api/pods/{id}/logs?follow=true&amp;replica=&amp;tail=&amp;since= : the pod's workload lines as newline-delimited JSON
/// (one {"at","microVmId","replica","stream","line"} per line), or as server-sent events ("event: log") when the client
/// accepts text/event-stream. With follow the response stays open and new lines follow as their hosts ship them (looked
/// for every 250 ms), until the client goes or the pod is deleted. The same access rules as podLogs.
/// </summary>
public sealed class PodLogStreamEndpoint(TokenAuthenticator authenticator, IDocumentStore store, WorkloadLogReader logs) : Endpoint<PodLogStreamRequest>
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    public override void Configure()
    {
        Get("/api/pods/{id}/logs");
        AllowAnonymous(); // the bearer token is checked below, with the rules of podLogs
        Summary(s => s.Summary = "A pod's workload log (stdout and stderr) as NDJSON or server-sent events; follow=true keeps streaming.");
    }

    public override async Task HandleAsync(PodLogStreamRequest request, CancellationToken ct)
    {
        var principal = await authenticator.AuthenticateAsync(HttpContext.Request.Headers.Authorization.ToString(), ct);
        if (principal is null)
        {
            await RefuseAsync(401, "UNAUTHENTICATED", "Send a valid API token: Authorization: Bearer <token>.", ct);
            return;
        }
        PodView pod;
        try
        {
            if (principal.Role == Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens read audit data only.");
            if (request.Tail is < 0) throw DomainException.Validation("tail must not be negative.");
            await using var session = store.QuerySession();
            pod = await PodLogsQuery.VisiblePodAsync(session, principal, Common.Ids.Parse(request.Id, "Pod"), ct);
        }
        catch (DomainException e)
        {
            await RefuseAsync(e.Code switch { ErrorCode.NotFound => 404, ErrorCode.Forbidden => 403, _ => 400 }, e.ContractCode, e.Message, ct);
            return;
        }

        var sse = HttpContext.Request.Headers.Accept.ToString().Contains("text/event-stream", StringComparison.OrdinalIgnoreCase);
        var response = HttpContext.Response;
        response.ContentType = sse ? "text/event-stream" : "application/x-ndjson";
        response.Headers.CacheControl = "no-cache";
        if (request.Follow) response.Headers["X-Accel-Buffering"] = "no";
        var lines = await logs.ReadAsync(pod.TenantId, pod.Id, request.Replica, request.Tail, request.Since, 0, ct);
        // Following after the last N lines: what comes later is what was stored after the newest line there is now.
        var last = lines.Count > 0 ? lines[^1].Id : request.Tail is null ? 0 : await logs.LastIdAsync(pod.TenantId, pod.Id, ct);
        while (true)
        {
            foreach (var line in lines)
            {
                var json = JsonSerializer.Serialize(new { line.At, line.MicroVmId, line.Replica, line.Stream, line.Line }, Json);
                await response.WriteAsync(sse ? $"id: {line.Id}\nevent: log\ndata: {json}\n\n" : json + "\n", ct);
                last = line.Id;
            }
            await response.Body.FlushAsync(ct);
            if (!request.Follow || ct.IsCancellationRequested) return;
            if (lines.Count == 0 && await GoneAsync(pod.Id, ct)) return;
            try
            {
                await Task.Delay(Poll, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            lines = await logs.ReadAsync(pod.TenantId, pod.Id, request.Replica, null, request.Since, last, ct);
        }
    }

    private async Task<bool> GoneAsync(Guid podId, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        return await session.LoadAsync<PodView>(podId, ct) is not { } view || view.Pod.Gone;
    }

    private Task RefuseAsync(int status, string code, string message, CancellationToken ct)
    {
        HttpContext.Response.StatusCode = status;
        return HttpContext.Response.WriteAsJsonAsync(new { error = code, message }, ct);
    }
}
