using System.Globalization;
using System.Text.Json.Nodes;
using Kraud.Api.Common;
using Marten;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// A watch: newline-delimited watch events (ADDED, MODIFIED, DELETED) of the objects a list would return, as they change.
/// Without a resourceVersion (or "0") it starts with every object as ADDED; from a resourceVersion, with what changed
/// after it (each object's newest state; an object created and changed in between is sent once). It reads the cluster's
/// objects again every Kubernetes:WatchPollMs and sends what differs, until timeoutSeconds or the client goes.
/// </summary>
public sealed class KubeWatch(HttpContext http, KubeCaller caller, IServiceProvider services, KubeKind kind, string? ns, Selectors selectors, string resourceVersion,
    bool table)
{
    public async Task RunAsync()
    {
        var options = services.GetRequiredService<KubernetesApiOptions>();
        var time = services.GetRequiredService<TimeProvider>();
        var log = services.GetRequiredService<KubeLog>();
        var seal = services.GetRequiredService<SecretSeal>();
        var store = services.GetRequiredService<IDocumentStore>();
        var timeout = int.TryParse(http.Request.Query["timeoutSeconds"], CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds) : TimeSpan.FromMinutes(30);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        deadline.CancelAfter(timeout);
        var ct = deadline.Token;
        http.Response.ContentType = "application/json";
        http.Response.Headers.CacheControl = "no-cache";
        // The API server answers a watch at once; a client must not wait for the first change to learn that its watch holds.
        await http.Response.Body.FlushAsync(ct);
        var since = long.TryParse(resourceVersion, CultureInfo.InvariantCulture, out var rv) ? rv : 0;
        // A removal of archived events compacted the log up to its cut (LiveStreamCompaction), as etcd compacts its history:
        // the cluster as it was at an earlier version can no longer be folded, so the watch ends at once with the API
        // server's answer to that, one ERROR event of 410 Expired, and the client lists again.
        if (since > 0 && await services.GetRequiredService<ArchiveBoundary>().CheckpointFloorAsync(ct) is var compacted && since <= compacted)
        {
            var expired = KubeStatus.Of(new KubeApiException(410, "Expired",
                $"too old resource version: {since} ({compacted}): the log up to {compacted} was archived and compacted"));
            await http.Response.WriteAsync(new JsonObject { ["type"] = "ERROR", ["object"] = expired }.ToJsonString() + "\n", ct);
            return;
        }
        Dictionary<string, KubeItem>? known = null;
        try
        {
            while (known is null || !ct.IsCancellationRequested)
            {
                // The first look answers what changed since the client's version, however long it takes on a busy machine: a
                // watch that timed out before it would tell the client that nothing changed. Only later looks end at the timeout.
                var look = known is null ? http.RequestAborted : ct;
                await using (var session = store.QuerySession())
                {
                    var snapshot = await ClusterObjects.LoadAsync(caller.Cluster, session, log, seal, time.GetUtcNow(), look);
                    var now = Watched(snapshot);
                    // The first look compares with the cluster as it was at the client's resourceVersion, so what was deleted
                    // between its list and this look is DELETED too (kubectl delete --wait lists, then watches from the list's version).
                    var before = known ?? (since == 0 ? [] : Watched(await ClusterObjects.LoadAtAsync(caller.Cluster, session, seal, since, snapshot.Now, look)));
                    foreach (var (key, item) in now)
                    {
                        if (!before.TryGetValue(key, out var was)) await SendAsync("ADDED", item, time.GetUtcNow(), look);
                        else if ((known is null && item.ResourceVersion > since) || Content(was) != Content(item)) await SendAsync("MODIFIED", item, time.GetUtcNow(), look);
                    }
                    foreach (var (_, item) in before.Where(k => !now.ContainsKey(k.Key)))
                    {
                        var gone = (JsonObject)item.Json.DeepClone();
                        KubeJson.Metadata(gone)["resourceVersion"] = snapshot.Head.ToString(CultureInfo.InvariantCulture);
                        await SendAsync("DELETED", item with { Json = gone, ResourceVersion = snapshot.Head }, time.GetUtcNow(), look);
                    }
                    known = now;
                }
                await Task.Delay(options.WatchPollMs, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // timeoutSeconds passed or the client went away: the watch ends as the API server ends it, by closing the stream.
        }
    }

    /// <summary>What this watch lists of the cluster's objects, by namespace and name.</summary>
    private Dictionary<string, KubeItem> Watched(ClusterObjects objects) =>
        objects.List(kind, ns).Where(selectors.Matches).ToDictionary(i => $"{i.Namespace}/{i.Name}");

    /// <summary>What a client sees of an object, less its resourceVersion (which moves with its siblings' events).</summary>
    private static string Content(KubeItem item)
    {
        var copy = (JsonObject)item.Json.DeepClone();
        KubeJson.Metadata(copy).Remove("resourceVersion");
        return copy.ToJsonString();
    }

    private async Task SendAsync(string type, KubeItem item, DateTimeOffset now, CancellationToken ct)
    {
        JsonNode obj = table ? Tables.For(kind, [item], item.ResourceVersion.ToString(CultureInfo.InvariantCulture), now) : item.Json;
        var line = new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() }.ToJsonString() + "\n";
        await http.Response.WriteAsync(line, ct);
        await http.Response.Body.FlushAsync(ct);
    }
}
