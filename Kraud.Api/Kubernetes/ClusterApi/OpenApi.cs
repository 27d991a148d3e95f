using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using k8s.Models;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// OpenAPI documents of what is served (v2 at /openapi/v2; v3 per group version), made from the wire types of the
/// official client by reflection, with their documentation (kubectl explain) and the group-version-kind, patch merge keys
/// and fieldValidation parameter kubectl looks for (so that it validates on the server, with --validate=true).
/// </summary>
public static class OpenApi
{
    private static readonly ConcurrentDictionary<string, string> Cache = new();
    private static readonly Lazy<IReadOnlyDictionary<string, string>> Docs = new(LoadDocs);

    private static IReadOnlyDictionary<string, string> LoadDocs()
    {
        var file = Path.ChangeExtension(typeof(V1Pod).Assembly.Location, ".xml");
        if (!File.Exists(file)) return new Dictionary<string, string>();
        return XDocument.Load(file).Descendants("member")
            .Where(m => m.Attribute("name") is not null && m.Element("summary") is not null)
            .GroupBy(m => m.Attribute("name")!.Value)
            .ToDictionary(g => g.Key, g => string.Join(' ', g.First().Element("summary")!.Value.Split((char[])['\n', '\r'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
    }

    public static string DefinitionName(Type type) =>
        KubeKinds.All.FirstOrDefault(k => k.Model == type) is { } kind
            ? $"io.k8s.api.{(kind.Group.Length == 0 ? "core" : kind.Group)}.{kind.Version}.{kind.Kind}"
            : $"io.kraud.k8s.{type.Name}";

    private sealed class Generator(string refPrefix, bool v3)
    {
        public readonly SortedDictionary<string, JsonObject> Definitions = new(StringComparer.Ordinal);

        public JsonObject Schema(Type type, string? field = null)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (type == typeof(string)) return new JsonObject { ["type"] = "string" };
            if (type == typeof(bool)) return new JsonObject { ["type"] = "boolean" };
            if (type == typeof(int)) return new JsonObject { ["type"] = "integer", ["format"] = "int32" };
            if (type == typeof(long)) return new JsonObject { ["type"] = "integer", ["format"] = "int64" };
            if (type == typeof(double) || type == typeof(float) || type == typeof(decimal)) return new JsonObject { ["type"] = "number", ["format"] = "double" };
            if (type == typeof(DateTime) || type == typeof(DateTimeOffset)) return new JsonObject { ["type"] = "string", ["format"] = "date-time" };
            if (type == typeof(byte[])) return new JsonObject { ["type"] = "string", ["format"] = "byte" };
            if (type == typeof(IntOrString))
                return v3 ? new JsonObject { ["x-kubernetes-int-or-string"] = true, ["anyOf"] = new JsonArray(new JsonObject { ["type"] = "integer" }, new JsonObject { ["type"] = "string" }) }
                    : new JsonObject { ["type"] = "string", ["format"] = "int-or-string" };
            if (type == typeof(ResourceQuantity)) return new JsonObject { ["type"] = "string", ["format"] = "quantity" };
            if (Admission.Dictionary(type) is { } value) return new JsonObject { ["type"] = "object", ["additionalProperties"] = Schema(value) };
            if (Admission.Element(type) is { } element)
            {
                var list = new JsonObject { ["type"] = "array", ["items"] = Schema(element) };
                if (field is not null && Patches.MergeKeys.TryGetValue(field, out var key) && element.Namespace == "k8s.Models")
                {
                    var mergeKey = field == "ports" && Admission.JsonProperties(element).ContainsKey("containerPort") ? "containerPort" : key;
                    if (Admission.JsonProperties(element).ContainsKey(mergeKey))
                    {
                        list["x-kubernetes-patch-merge-key"] = mergeKey;
                        list["x-kubernetes-patch-strategy"] = "merge";
                    }
                }
                else if (field is not null && Patches.MergedScalarLists.Contains(field)) list["x-kubernetes-patch-strategy"] = "merge";
                return list;
            }
            if (type.Namespace != "k8s.Models" || !type.IsClass) return new JsonObject { ["type"] = "object" };
            var name = DefinitionName(type);
            if (!Definitions.ContainsKey(name))
            {
                var definition = new JsonObject { ["type"] = "object" };
                Definitions[name] = definition;
                if (Docs.Value.TryGetValue($"T:{type.FullName}", out var doc)) definition["description"] = doc;
                var properties = new JsonObject();
                var required = new JsonArray();
                foreach (var (json, property) in Admission.JsonProperties(type).OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    var schema = Schema(property.PropertyType, json);
                    if (Docs.Value.TryGetValue($"P:{type.FullName}.{property.Name}", out var propertyDoc))
                    {
                        if (schema.ContainsKey("$ref"))
                            schema = v3 ? new JsonObject { ["allOf"] = new JsonArray(schema), ["description"] = propertyDoc } : schema;
                        else schema["description"] = propertyDoc;
                    }
                    properties[json] = schema;
                    if (property.GetCustomAttribute<System.Text.Json.Serialization.JsonRequiredAttribute>() is not null) required.Add(json);
                }
                definition["properties"] = properties;
                if (KubeKinds.All.FirstOrDefault(k => k.Model == type) is { } kind)
                    definition["x-kubernetes-group-version-kind"] = new JsonArray(new JsonObject { ["group"] = kind.Group, ["kind"] = kind.Kind, ["version"] = kind.Version });
            }
            return new JsonObject { ["$ref"] = refPrefix + name };
        }
    }

    private static JsonObject Paths(IEnumerable<KubeKind> kinds, Generator generator, bool v3)
    {
        var paths = new JsonObject();
        foreach (var kind in kinds)
        {
            var gvk = new JsonObject { ["group"] = kind.Group, ["kind"] = kind.Kind, ["version"] = kind.Version };
            var schemaRef = generator.Schema(kind.Model);
            var prefix = "/" + kind.GroupVersionPath + (kind.Namespaced ? "/namespaces/{namespace}/" : "/") + kind.Plural;
            JsonObject Operation(string id, bool withFieldValidation)
            {
                var parameters = new JsonArray();
                if (withFieldValidation)
                    parameters.Add(v3
                        ? new JsonObject { ["name"] = "fieldValidation", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } }
                        : new JsonObject { ["name"] = "fieldValidation", ["in"] = "query", ["type"] = "string", ["uniqueItems"] = true });
                var ok = v3
                    ? new JsonObject { ["description"] = "OK", ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = schemaRef.DeepClone() } } }
                    : new JsonObject { ["description"] = "OK", ["schema"] = schemaRef.DeepClone() };
                return new JsonObject
                {
                    ["operationId"] = id + kind.Kind, ["parameters"] = parameters, ["responses"] = new JsonObject { ["200"] = ok },
                    ["x-kubernetes-action"] = id.StartsWith("list", StringComparison.Ordinal) ? "list" : id,
                    ["x-kubernetes-group-version-kind"] = gvk.DeepClone(),
                };
            }
            var item = new JsonObject { ["get"] = Operation("read", false) };
            if (kind.Stored)
            {
                item["put"] = Operation("replace", true);
                item["patch"] = Operation("patch", true);
                item["delete"] = Operation("delete", false);
            }
            var collection = new JsonObject { ["get"] = Operation("list", false) };
            if (kind.Stored) collection["post"] = Operation("create", true);
            paths[prefix] = collection;
            paths[prefix + "/{name}"] = item;
        }
        return paths;
    }

    private static readonly ConcurrentDictionary<string, (string Json, byte[] Protobuf)> V2Cache = new();

    private static (string Json, byte[] Protobuf) V2(string version) => V2Cache.GetOrAdd(version, _ =>
    {
        var generator = new Generator("#/definitions/", v3: false);
        var paths = Paths(KubeKinds.All, generator, v3: false);
        foreach (var extra in new[] { typeof(V1Status), typeof(V1Scale) }) generator.Schema(extra);
        var document = new JsonObject
        {
            ["swagger"] = "2.0", ["info"] = new JsonObject { ["title"] = "Kubernetes (served by Kraud)", ["version"] = $"v{version}.0" }, ["paths"] = paths,
            ["definitions"] = new JsonObject(generator.Definitions.Select(d => KeyValuePair.Create(d.Key, (JsonNode?)d.Value))),
        };
        return (document.ToJsonString(), OpenApiProtobuf.Encode(document));
    });

    /// <summary>OpenAPI v2 as JSON, or as protocol buffers for a client that asks for those first (kubectl before 1.27 does).</summary>
    public static async Task WriteV2Async(HttpContext http, string version)
    {
        var (json, protobuf) = V2(version);
        var accept = http.Request.Headers.Accept.ToString();
        var wantsProtobuf = accept.Contains("protobuf", StringComparison.Ordinal) &&
                            (!accept.Contains("json", StringComparison.Ordinal) ||
                             accept.IndexOf("protobuf", StringComparison.Ordinal) < accept.IndexOf("json", StringComparison.Ordinal));
        if (wantsProtobuf)
        {
            http.Response.ContentType = OpenApiProtobuf.MediaType;
            await http.Response.Body.WriteAsync(protobuf, http.RequestAborted);
            return;
        }
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(json, http.RequestAborted);
    }

    private static string V3(string groupVersionPath, string version) => Cache.GetOrAdd("v3/" + groupVersionPath, _ =>
    {
        var generator = new Generator("#/components/schemas/", v3: true);
        var paths = Paths(KubeKinds.All.Where(k => k.GroupVersionPath == groupVersionPath), generator, v3: true);
        return new JsonObject
        {
            ["openapi"] = "3.0.0", ["info"] = new JsonObject { ["title"] = "Kubernetes (served by Kraud)", ["version"] = $"v{version}.0" }, ["paths"] = paths,
            ["components"] = new JsonObject
            {
                ["schemas"] = new JsonObject(generator.Definitions.Select(d => KeyValuePair.Create(d.Key, (JsonNode?)d.Value))),
            },
        }.ToJsonString();
    });

    public static Task WriteV3IndexAsync(HttpContext http, Guid clusterId)
    {
        var paths = new JsonObject();
        foreach (var gv in KubeKinds.GroupVersionPaths)
        {
            var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(V3(gv, "")))).ToUpperInvariant()[..32];
            // Absolute on the server (client libraries replace the whole path with it), so it carries the cluster's prefix.
            paths[gv] = new JsonObject { ["serverRelativeURL"] = $"/clusters/{clusterId}/openapi/v3/{gv}?hash={hash}" };
        }
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync(new JsonObject { ["paths"] = paths }.ToJsonString(), http.RequestAborted);
    }

    public static Task WriteV3Async(HttpContext http, string groupVersionPath, string version)
    {
        if (!KubeKinds.GroupVersionPaths.Contains(groupVersionPath)) throw KubeApiException.NotFound("openapi", groupVersionPath);
        http.Response.ContentType = "application/json";
        http.Response.Headers.CacheControl = "public, immutable";
        return http.Response.WriteAsync(V3(groupVersionPath, ""), http.RequestAborted);
    }
}
