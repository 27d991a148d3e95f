using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>Kubernetes objects as JSON trees: the wire types' serializer, canonical forms, and paths into them.</summary>
public static class KubeJson
{
    public static JsonObject ToNode(object model) => JsonNode.Parse(KubernetesJson.Serialize(model))!.AsObject();

    public static T ToModel<T>(JsonNode node) => KubernetesJson.Deserialize<T>(node.ToJsonString());

    public static object ToModel(JsonNode node, Type type) =>
        typeof(KubernetesJson).GetMethods().Single(m => m.Name == nameof(KubernetesJson.Deserialize) && m.GetParameters() is [{ ParameterType: var p }, ..] && p == typeof(string))
            .MakeGenericMethod(type).Invoke(null, [node.ToJsonString(), null])!;

    /// <summary>Keys sorted at every level, so that the same content is the same text whatever order a client wrote it in.</summary>
    public static JsonNode? Canonical(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Canonical(p.Value)))),
        JsonArray a => new JsonArray(a.Select(Canonical).ToArray()),
        null => null,
        _ => JsonNode.Parse(node.ToJsonString()),
    };

    public static string CanonicalText(JsonNode? node) => Canonical(node)?.ToJsonString() ?? "null";

    public static JsonObject Metadata(JsonObject obj) => obj["metadata"] as JsonObject ?? (JsonObject)(obj["metadata"] = new JsonObject());

    public static string? Text(JsonNode? node, string path)
    {
        foreach (var part in path.Split('.'))
        {
            if (node is not JsonObject o || !o.TryGetPropertyValue(part, out node)) return null;
        }
        return node switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonValue v => v.ToJsonString(),
            _ => null,
        };
    }

    public static Dictionary<string, string> Labels(JsonObject obj) =>
        (Metadata(obj)["labels"] as JsonObject)?.Where(p => p.Value is not null).ToDictionary(p => p.Key, p => p.Value!.ToString()) ?? [];

    public static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static JsonNode DeepClone(JsonNode node) => node.DeepClone();

    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = false };
}
