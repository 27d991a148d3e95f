using System.Globalization;
using System.Text.Json.Nodes;
using Kraud.Api.Common;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// kubectl logs: the lines the pod's microVM wrote, as host runtimes shipped them (<see cref="IWorkloadLogs"/>). A
/// Kubernetes pod is one microVM of a Deployment's Kraud pod, so only that microVM's lines are its log; tailLines,
/// sinceSeconds/sinceTime, timestamps and follow (until the client hangs up) are served.
/// </summary>
public static class PodLogs
{
    private static readonly TimeSpan FollowPoll = TimeSpan.FromMilliseconds(500);

    public static async Task WriteAsync(HttpContext http, KubeItem pod, Guid tenant, IServiceProvider services)
    {
        var logs = services.GetRequiredService<IWorkloadLogs>();
        var time = services.GetRequiredService<TimeProvider>();
        var annotations = pod.Json["metadata"]?["annotations"] as JsonObject;
        if (annotations?["kraud.cloud/microvm"]?.GetValue<string>() is not { } vmText || !Guid.TryParse(vmText, out var vm)
            || !int.TryParse(annotations["kraud.cloud/replica"]?.GetValue<string>(), CultureInfo.InvariantCulture, out var replica))
            throw KubeApiException.BadRequest($"pod \"{pod.Name}\" is not a microVM of a Deployment: it has no log");

        var query = http.Request.Query;
        int? tail = query.TryGetValue("tailLines", out var t) && int.TryParse(t, CultureInfo.InvariantCulture, out var lines) ? Math.Max(lines, 0) : null;
        DateTime? since = query.TryGetValue("sinceSeconds", out var s) && int.TryParse(s, CultureInfo.InvariantCulture, out var seconds)
            ? time.GetUtcNow().UtcDateTime.AddSeconds(-seconds)
            : query.TryGetValue("sinceTime", out var st) && DateTime.TryParse(st, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var sinceTime)
                ? sinceTime
                : null;
        var timestamps = query["timestamps"] == "true";
        var follow = query["follow"] == "true";

        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "text/plain; charset=utf-8";
        // A follower goes on after the newest line at its start, also when tail or since left that line out.
        var after = follow ? await logs.LastIdAsync(tenant, pod.StreamId, http.RequestAborted) : 0L;
        var batch = await logs.ReadAsync(tenant, pod.StreamId, replica, tail, since, 0, http.RequestAborted);
        while (true)
        {
            foreach (var line in batch)
            {
                after = Math.Max(after, line.Id);
                // A replica's earlier microVMs (before a restart) are other Kubernetes pods.
                if (line.MicroVmId != vm) continue;
                var text = timestamps ? $"{line.At.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture)} {line.Line}\n" : line.Line + "\n";
                await http.Response.WriteAsync(text, http.RequestAborted);
            }
            if (!follow) return;
            await http.Response.Body.FlushAsync(http.RequestAborted);
            try
            {
                await Task.Delay(FollowPoll, time, http.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return; // kubectl logs -f ended (Ctrl-C)
            }
            batch = await logs.ReadAsync(tenant, pod.StreamId, replica, null, null, after, http.RequestAborted);
        }
    }
}
