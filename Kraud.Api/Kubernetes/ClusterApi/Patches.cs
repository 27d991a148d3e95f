using System.Text.Json.Nodes;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// The patches kubectl sends: JSON merge patch (RFC 7386) and Kubernetes' strategic merge patch, where lists of objects
/// with a merge key (containers by name, env by name, ports by port …) merge element by element and directives
/// ($patch, $setElementOrder, $retainKeys, $deleteFromPrimitiveList) say what plain JSON cannot.
/// </summary>
public static class Patches
{
    /// <summary>Merge keys of the served types' lists, by field name (the same table the OpenAPI documents publish).</summary>
    public static readonly IReadOnlyDictionary<string, string> MergeKeys = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["containers"] = "name", ["initContainers"] = "name", ["ephemeralContainers"] = "name", ["env"] = "name", ["volumes"] = "name",
        ["volumeMounts"] = "mountPath", ["volumeDevices"] = "devicePath", ["imagePullSecrets"] = "name", ["hostAliases"] = "ip",
        ["conditions"] = "type", ["ports"] = "port",
    };

    /// <summary>Lists of scalars that merge as sets rather than being replaced.</summary>
    public static readonly IReadOnlySet<string> MergedScalarLists = new HashSet<string>(StringComparer.Ordinal) { "finalizers" };

    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject p) return patch?.DeepClone();
        var result = target as JsonObject is { } t ? (JsonObject)t.DeepClone() : [];
        foreach (var (key, value) in p)
        {
            if (value is null) result.Remove(key);
            else result[key] = MergePatch(result[key], value);
        }
        return result;
    }

    public static JsonNode? StrategicMergePatch(JsonNode? target, JsonNode? patch) => patch is JsonObject p ? MergeObject(target as JsonObject, p) : patch?.DeepClone();

    private static JsonObject MergeObject(JsonObject? target, JsonObject patch)
    {
        if (patch["$patch"]?.GetValue<string>() == "replace")
        {
            var replaced = (JsonObject)patch.DeepClone();
            replaced.Remove("$patch");
            return replaced;
        }
        var result = target is null ? [] : (JsonObject)target.DeepClone();
        if (patch["$retainKeys"] is JsonArray retain)
        {
            var keep = retain.Select(k => k?.GetValue<string>()).ToHashSet();
            foreach (var key in result.Select(p => p.Key).Where(k => !keep.Contains(k)).ToList()) result.Remove(key);
        }
        foreach (var (key, value) in patch)
        {
            if (key is "$patch" or "$retainKeys" || key.StartsWith("$setElementOrder/", StringComparison.Ordinal)) continue;
            if (key.StartsWith("$deleteFromPrimitiveList/", StringComparison.Ordinal))
            {
                var field = key["$deleteFromPrimitiveList/".Length..];
                if (result[field] is JsonArray list && value is JsonArray remove)
                {
                    var gone = remove.Select(v => v?.ToJsonString()).ToHashSet();
                    result[field] = new JsonArray(list.Where(v => !gone.Contains(v?.ToJsonString())).Select(v => v?.DeepClone()).ToArray());
                }
                continue;
            }
            if (value is null)
            {
                result.Remove(key);
                continue;
            }
            result[key] = value switch
            {
                JsonObject o => MergeObject(result[key] as JsonObject, o),
                JsonArray a => MergeList(key, result[key] as JsonArray, a, patch[$"$setElementOrder/{key}"] as JsonArray),
                _ => value.DeepClone(),
            };
        }
        return result;
    }

    private static JsonArray MergeList(string field, JsonArray? target, JsonArray patch, JsonArray? order)
    {
        if (patch.Count == 1 && patch[0] is JsonObject only && only["$patch"]?.GetValue<string>() == "replace") return [];
        if (MergedScalarLists.Contains(field))
        {
            var merged = (target ?? []).Select(v => v?.DeepClone()).ToList();
            foreach (var v in patch.Where(v => merged.All(m => m?.ToJsonString() != v?.ToJsonString()))) merged.Add(v?.DeepClone());
            return new JsonArray(merged.ToArray());
        }
        if (!MergeKeys.TryGetValue(field, out var mergeKey) || patch.Any(e => e is not JsonObject) || target is null)
            return new JsonArray(patch.Where(e => e is not JsonObject o || o["$patch"] is null).Select(e => e?.DeepClone()).ToArray());
        // Service ports merge by port, a container's by containerPort.
        if (field == "ports" && target.Concat(patch).OfType<JsonObject>().Any(e => e.ContainsKey("containerPort"))) mergeKey = "containerPort";
        var items = target.Select(e => e?.DeepClone()).ToList();
        string? KeyOf(JsonNode? e) => (e as JsonObject)?[mergeKey]?.ToJsonString();
        foreach (var element in patch.OfType<JsonObject>())
        {
            var key = KeyOf(element);
            var index = items.FindIndex(e => KeyOf(e) == key);
            if (element["$patch"]?.GetValue<string>() == "delete")
            {
                if (index >= 0) items.RemoveAt(index);
                continue;
            }
            if (index >= 0) items[index] = MergeObject(items[index] as JsonObject, element);
            else items.Add(MergeObject(null, element));
        }
        if (order is not null)
        {
            var position = order.Select(KeyOf).ToList();
            items = items.OrderBy(e => position.IndexOf(KeyOf(e)) is var i && i < 0 ? int.MaxValue : i).ToList();
        }
        return new JsonArray(items.ToArray());
    }
}
