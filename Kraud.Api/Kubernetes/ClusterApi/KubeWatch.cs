using System.Globalization;
using System.Text.Json.Nodes;
using Kraud.Api.Common;
using Kraud.Domain.KubernetesApi;
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
        var database = services.GetRequiredService<KraudDatabase>();
        var seal = services.GetRequiredService<SecretSeal>();
        var store = services.GetRequiredService<IDocumentStore>();
        var timeout = int.TryParse(http.Request.Query["timeoutSeconds"], CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds) : TimeSpan.FromMinutes(30);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        deadline.CancelAfter(timeout);
        var ct = deadline.Token;
        http.Response.ContentType = "application/json";
        http.Response.Headers.CacheControl = "no-cache";
        var since = long.TryParse(resourceVersion, CultureInfo.InvariantCulture, out var rv) ? rv : 0;
        Dictionary<string, KubeItem>? known = null;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await using (var session = store.QuerySession())
                {
                    var snapshot = await ClusterObjects.LoadAsync(caller.Cluster, session, database, seal, time.GetUtcNow(), ct);
                    var now = snapshot.List(kind, ns).Where(selectors.Matches).ToDictionary(i => $"{i.Namespace}/{i.Name}");
                    if (known is null)
                    {
                        foreach (var item in now.Values.Where(i => since == 0 || i.ResourceVersion > since))
                            await SendAsync(since == 0 ? "ADDED" : "MODIFIED", item, time.GetUtcNow(), ct);
                        // Deleted after the client's resourceVersion and before this first look (kubectl delete --wait lists, then
                        // watches from the list's version): the log says so, or the client would wait for a DELETED forever.
                        if (since > 0 && kind.Stored)
                            foreach (var gone in await DeletedSinceAsync(session, since, ct))
                                if (!now.ContainsKey($"{gone.Namespace}/{gone.Name}") && selectors.Matches(gone))
                                    await SendAsync("DELETED", gone, time.GetUtcNow(), ct);
                    }
                    else
                    {
                        foreach (var (key, item) in now)
                        {
                            if (!known.TryGetValue(key, out var before)) await SendAsync("ADDED", item, time.GetUtcNow(), ct);
                            else if (Content(before) != Content(item)) await SendAsync("MODIFIED", item, time.GetUtcNow(), ct);
                        }
                        foreach (var (key, item) in known.Where(k => !now.ContainsKey(k.Key)))
                        {
                            var gone = (JsonObject)item.Json.DeepClone();
                            KubeJson.Metadata(gone)["resourceVersion"] = snapshot.Head.ToString(CultureInfo.InvariantCulture);
                            await SendAsync("DELETED", item with { Json = gone, ResourceVersion = snapshot.Head }, time.GetUtcNow(), ct);
                        }
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

    private async Task<IReadOnlyList<KubeItem>> DeletedSinceAsync(IQuerySession session, long since, CancellationToken ct)
    {
        var events = await session.Events.QueryAllRawEvents().Where(e => e.Sequence > since && e.EventTypeName == "kube_object_deleted").ToListAsync(ct);
        return events.Select(e => (e.Sequence, Deleted: (KubeObjectDeleted)e.Data))
            .Where(e => e.Deleted.ClusterId == caller.Cluster.Id && e.Deleted.Kind == kind.Kind && (ns is null || e.Deleted.Namespace == ns))
            .Select(e => new KubeItem(kind, e.Deleted.Namespace, e.Deleted.Name, e.Sequence, new JsonObject
            {
                ["apiVersion"] = kind.ApiVersion, ["kind"] = kind.Kind,
                ["metadata"] = kind.Namespaced
                    ? new JsonObject { ["name"] = e.Deleted.Name, ["namespace"] = e.Deleted.Namespace, ["resourceVersion"] = e.Sequence.ToString(CultureInfo.InvariantCulture) }
                    : new JsonObject { ["name"] = e.Deleted.Name, ["resourceVersion"] = e.Sequence.ToString(CultureInfo.InvariantCulture) },
            }, e.Deleted.ObjectId)).ToList();
    }

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
