using System.Globalization;
using System.Text.Json.Nodes;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// Server-side printing (meta.k8s.io/v1 Table): kubectl get asks for it and prints these columns; priority 1 columns are
/// those of -o wide.
/// </summary>
public static class Tables
{
    private sealed record Column(string Name, string Type, int Priority, Func<JsonObject, DateTimeOffset, JsonNode?> Cell, string Format = "");

    private static readonly Column Name = new("Name", "string", 0, (o, _) => KubeJson.Text(o, "metadata.name"), "name");
    private static readonly Column Age = new("Age", "string", 0, (o, now) => AgeOf(KubeJson.Text(o, "metadata.creationTimestamp"), now));

    private static IReadOnlyList<Column> ColumnsOf(KubeKind kind) => kind.Kind switch
    {
        "Pod" =>
        [
            Name,
            new("Ready", "string", 0, (o, _) => $"{(o["status"]?["containerStatuses"] as JsonArray ?? []).Count(c => c?["ready"]?.GetValue<bool>() == true)}/{(o["spec"]?["containers"] as JsonArray ?? []).Count}"),
            new("Status", "string", 0, (o, _) => KubeJson.Text(o, "metadata.deletionTimestamp") is not null ? "Terminating"
                : KubeJson.Text(o, "status.containerStatuses") is not null && (o["status"]!["containerStatuses"] as JsonArray)!.FirstOrDefault()?["state"]?["waiting"]?["reason"]?.GetValue<string>() is { } waiting
                    ? waiting : KubeJson.Text(o, "status.phase")),
            new("Restarts", "integer", 0, (o, _) => 0),
            Age,
            new("IP", "string", 1, (o, _) => KubeJson.Text(o, "status.podIP") ?? "<none>"),
            new("Node", "string", 1, (o, _) => KubeJson.Text(o, "spec.nodeName") ?? "<none>"),
            new("Nominated Node", "string", 1, (o, _) => "<none>"),
            new("Readiness Gates", "string", 1, (o, _) => "<none>"),
        ],
        "Deployment" =>
        [
            Name,
            new("Ready", "string", 0, (o, _) => $"{Int(o, "status.readyReplicas")}/{Int(o, "spec.replicas")}"),
            new("Up-to-date", "integer", 0, (o, _) => Int(o, "status.updatedReplicas")),
            new("Available", "integer", 0, (o, _) => Int(o, "status.availableReplicas")),
            Age,
            new("Containers", "string", 1, (o, _) => string.Join(',', Containers(o).Select(c => c?["name"]?.GetValue<string>()))),
            new("Images", "string", 1, (o, _) => string.Join(',', Containers(o).Select(c => c?["image"]?.GetValue<string>()))),
            new("Selector", "string", 1, (o, _) => string.Join(',', (o["spec"]?["selector"]?["matchLabels"] as JsonObject ?? []).Select(p => $"{p.Key}={p.Value}"))),
        ],
        "ReplicaSet" =>
        [
            Name,
            new("Desired", "integer", 0, (o, _) => Int(o, "spec.replicas")),
            new("Current", "integer", 0, (o, _) => Int(o, "status.replicas")),
            new("Ready", "integer", 0, (o, _) => Int(o, "status.readyReplicas")),
            Age,
        ],
        "Service" =>
        [
            Name,
            new("Type", "string", 0, (o, _) => KubeJson.Text(o, "spec.type") ?? "ClusterIP"),
            new("Cluster-IP", "string", 0, (o, _) => KubeJson.Text(o, "spec.clusterIP") ?? "None"),
            // As kubectl prints it: a LoadBalancer's address once it has one, <pending> until then.
            new("External-IP", "string", 0, (o, _) => o["status"]?["loadBalancer"]?["ingress"]?[0]?["hostname"]?.GetValue<string>()
                ?? (KubeJson.Text(o, "spec.type") == "LoadBalancer" ? "<pending>" : "<none>")),
            new("Port(s)", "string", 0, (o, _) => string.Join(',', (o["spec"]?["ports"] as JsonArray ?? []).Select(p => $"{p?["port"]}/{p?["protocol"] ?? "TCP"}")) is { Length: > 0 } ports ? ports : "<none>"),
            Age,
        ],
        "PersistentVolumeClaim" =>
        [
            Name,
            new("Status", "string", 0, (o, _) => KubeJson.Text(o, "status.phase") ?? "Pending"),
            new("Volume", "string", 0, (o, _) => KubeJson.Text(o, "spec.volumeName") ?? ""),
            new("Capacity", "string", 0, (o, _) => o["status"]?["capacity"]?["storage"]?.GetValue<string>() ?? ""),
            new("Access Modes", "string", 0, (o, _) => string.Join(',', (o["spec"]?["accessModes"] as JsonArray ?? []).Select(m => m?.GetValue<string>() switch
            {
                "ReadWriteOnce" => "RWO", "ReadOnlyMany" => "ROX", "ReadWriteMany" => "RWX", var other => other,
            }))),
            new("StorageClass", "string", 0, (o, _) => KubeJson.Text(o, "spec.storageClassName") ?? "block"),
            Age,
        ],
        "ConfigMap" => [Name, new("Data", "integer", 0, (o, _) => (o["data"] as JsonObject)?.Count ?? 0), Age],
        "Secret" => [Name, new("Type", "string", 0, (o, _) => KubeJson.Text(o, "type") ?? "Opaque"), new("Data", "integer", 0, (o, _) => (o["data"] as JsonObject)?.Count ?? 0), Age],
        "Namespace" => [Name, new("Status", "string", 0, (o, _) => KubeJson.Text(o, "status.phase") ?? "Active"), Age],
        "Node" =>
        [
            Name,
            new("Status", "string", 0, (o, _) => (o["status"]?["conditions"] as JsonArray ?? []).Any(c => c?["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True") ? "Ready" : "NotReady"),
            new("Roles", "string", 0, (o, _) => "<none>"),
            Age,
            new("Version", "string", 0, (o, _) => KubeJson.Text(o, "status.nodeInfo.kubeletVersion")),
            new("Internal-IP", "string", 1, (o, _) => (o["status"]?["addresses"] as JsonArray ?? []).FirstOrDefault(a => a?["type"]?.GetValue<string>() == "InternalIP")?["address"]?.GetValue<string>() ?? "<none>"),
            new("Host", "string", 1, (o, _) => KubeJson.Labels(o).GetValueOrDefault("kraud.cloud/host", "<none>")),
        ],
        "Event" =>
        [
            new("Last Seen", "string", 0, (o, now) => AgeOf(KubeJson.Text(o, "lastTimestamp"), now)),
            new("Type", "string", 0, (o, _) => KubeJson.Text(o, "type")),
            new("Reason", "string", 0, (o, _) => KubeJson.Text(o, "reason")),
            new("Object", "string", 0, (o, _) => $"{KubeJson.Text(o, "involvedObject.kind")?.ToLowerInvariant()}/{KubeJson.Text(o, "involvedObject.name")}"),
            new("Message", "string", 0, (o, _) => KubeJson.Text(o, "message")),
        ],
        _ => [Name, Age],
    };

    private static IEnumerable<JsonNode?> Containers(JsonObject o) => o["spec"]?["template"]?["spec"]?["containers"] as JsonArray ?? [];

    private static int Int(JsonObject o, string path) => int.TryParse(KubeJson.Text(o, path), CultureInfo.InvariantCulture, out var v) ? v : 0;

    public static JsonObject For(KubeKind kind, IEnumerable<KubeItem> items, string resourceVersion, DateTimeOffset now)
    {
        var columns = ColumnsOf(kind);
        return new JsonObject
        {
            ["kind"] = "Table", ["apiVersion"] = "meta.k8s.io/v1", ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
            ["columnDefinitions"] = new JsonArray(columns.Select(c => (JsonNode)new JsonObject
            {
                ["name"] = c.Name, ["type"] = c.Type, ["format"] = c.Format, ["description"] = c.Name, ["priority"] = c.Priority,
            }).ToArray()),
            ["rows"] = new JsonArray(items.Select(i => (JsonNode)new JsonObject
            {
                ["cells"] = new JsonArray(columns.Select(c => c.Cell(i.Json, now)).ToArray()),
                ["object"] = i.Json.DeepClone(),
            }).ToArray()),
        };
    }

    /// <summary>Ages as kubectl prints them (HumanDuration): 45s, 3m20s, 12m, 5h, 3d4h.</summary>
    public static string AgeOf(string? timestamp, DateTimeOffset now)
    {
        if (timestamp is null || !DateTimeOffset.TryParse(timestamp, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)) return "<unknown>";
        var d = now - at;
        if (d < TimeSpan.Zero) d = TimeSpan.Zero;
        return d.TotalSeconds < 120 ? $"{(int)d.TotalSeconds}s"
            : d.TotalMinutes < 10 ? $"{(int)d.TotalMinutes}m{d.Seconds}s"
            : d.TotalHours < 3 ? $"{(int)d.TotalMinutes}m"
            : d.TotalHours < 8 ? $"{(int)d.TotalHours}h{d.Minutes}m"
            : d.TotalDays < 2 ? $"{(int)d.TotalHours}h"
            : d.TotalDays < 8 ? $"{(int)d.TotalDays}d{d.Hours}h"
            : $"{(int)d.TotalDays}d";
    }
}
