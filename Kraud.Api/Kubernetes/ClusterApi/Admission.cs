using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s.Models;
using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Domain.KubernetesApi;
using Kraud.Domain.Pods;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>An object the API accepted: its canonical manifest (what events keep), and what Kraud runs for it.</summary>
public sealed record Admitted(JsonObject Manifest, string Text, string SpecText, WorkloadIntent? Workload, PodSpec? Template,
    IReadOnlyDictionary<string, string>? SecretData, ClaimVolume? Claim = null);

/// <summary>
/// What the API server checks before anything is appended: the body decodes as the kind's wire type (with
/// fieldValidation=Strict, as kubectl asks, an unknown field is refused), names and namespaces are valid, and what Kraud
/// cannot run is said plainly (422) instead of being dropped.
/// </summary>
public static class Admission
{
    private static readonly string[] ServerOwnedMetadata =
        ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"];

    public static Admitted Admit(KubeKind kind, JsonObject body, string? ns, string name, string? fieldValidation, ClusterObjects objects,
        Domain.Kubernetes.KubernetesCluster cluster, SecretSeal seal, Guid objectId, List<string> warnings)
    {
        var unknown = new List<string>();
        UnknownFields(body, kind.Model, "", unknown);
        if (unknown.Count > 0)
        {
            var message = string.Join(", ", unknown.Select(u => $"unknown field \"{u}\""));
            if (string.Equals(fieldValidation, "Strict", StringComparison.OrdinalIgnoreCase))
                throw KubeApiException.BadRequest($"{kind.Kind} in version \"{kind.Version}\" cannot be handled as a {kind.Kind}: strict decoding error: {message}");
            if (!string.Equals(fieldValidation, "Ignore", StringComparison.OrdinalIgnoreCase)) warnings.AddRange(unknown.Select(u => $"unknown field \"{u}\""));
        }
        object model;
        try
        {
            model = KubeJson.ToModel(body, kind.Model);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or TargetInvocationException)
        {
            throw KubeApiException.BadRequest(
                $"{kind.Kind} in version \"{kind.Version}\" cannot be handled as a {kind.Kind}: {(e as TargetInvocationException)?.InnerException?.Message ?? e.Message}");
        }
        // What decoded is what is kept: unknown fields go, the rest in the wire type's own form.
        var manifest = KubeJson.ToNode(model);
        var meta = KubeJson.Metadata(manifest);
        foreach (var field in ServerOwnedMetadata) meta.Remove(field);
        manifest.Remove("status");
        meta["name"] = name;
        if (kind.Namespaced) meta["namespace"] = ns;
        else meta.Remove("namespace");

        WorkloadIntent? workload = null;
        PodSpec? template = null;
        IReadOnlyDictionary<string, string>? secretData = null;
        ClaimVolume? claimVolume = null;
        switch (model)
        {
            case V1Deployment deployment:
                (workload, template) = Deployment(deployment, name, ns!, objects, cluster, manifest);
                break;
            case V1Secret secret:
                secretData = SecretValues(secret, name);
                manifest.Remove("stringData");
                // The event says which keys there are and whether a value changed, never what it is.
                manifest["data"] = new JsonObject(secretData.OrderBy(p => p.Key, StringComparer.Ordinal)
                    .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)$"sealed:{seal.Fingerprint(p.Value, objectId)}")));
                manifest["type"] ??= "Opaque";
                // kubectl apply keeps the whole manifest it applied in an annotation, values included: that goes into the
                // sealed document too (under a key no Secret key can have), so kubectl's three-way merge still works.
                if (manifest["metadata"]?["annotations"] is JsonObject annotations && annotations[LastApplied] is { } lastApplied)
                {
                    annotations.Remove(LastApplied);
                    secretData = new Dictionary<string, string>(secretData, StringComparer.Ordinal) { [SealedLastApplied] = lastApplied.GetValue<string>() };
                }
                break;
            case V1PersistentVolumeClaim claim:
                claimVolume = Claim(claim, name, ns!, objects, cluster);
                break;
            case V1ConfigMap configMap:
                foreach (var key in (configMap.Data?.Keys ?? []).Concat(configMap.BinaryData?.Keys ?? [])) RequireDataKey(kind, name, key);
                break;
            case V1Service service:
                Service(service, name, manifest);
                break;
        }
        // What the server writes into metadata when it serves an object comes back in every patch (kubectl's three-way merge
        // patches what it read) and every replace of what was read: it is not the client's, so an apply that changes nothing
        // else appends nothing. An annotations object left empty is as good as none.
        if (meta["annotations"] is JsonObject served)
        {
            served.Remove(ClusterObjects.ResourceIdAnnotation);
            if (served.Count == 0) meta.Remove("annotations");
        }
        var canonical = (JsonObject)KubeJson.Canonical(manifest)!;
        var spec = KubeJson.CanonicalText(canonical["spec"]) + KubeJson.CanonicalText(canonical["data"]);
        return new Admitted(canonical, canonical.ToJsonString(), spec, workload, template, secretData, claimVolume);
    }

    public const string LastApplied = "kubectl.kubernetes.io/last-applied-configuration";

    /// <summary>Where a Secret's last-applied-configuration annotation is sealed: not a valid data key, so never one of its values.</summary>
    public const string SealedLastApplied = ":" + LastApplied;

    private static void RequireDataKey(KubeKind kind, string name, string key)
    {
        if (key.Length == 0 || key.Length > 253 || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw KubeApiException.Invalid(kind.Kind, name, $"data[{key}]: Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'");
    }

    private static Dictionary<string, string> SecretValues(V1Secret secret, string name)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, bytes) in secret.Data ?? new Dictionary<string, byte[]>())
        {
            RequireDataKey(KubeKinds.Secret, name, key);
            values[key] = Convert.ToBase64String(bytes);
        }
        foreach (var (key, text) in secret.StringData ?? new Dictionary<string, string>())
        {
            RequireDataKey(KubeKinds.Secret, name, key);
            values[key] = Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
        }
        return values;
    }

    /// <summary>The storage classes a claim may name: Kraud's volume classes (BLOCK is the default, as a cluster's default class).</summary>
    public static readonly IReadOnlyDictionary<string, Domain.Volumes.VolumeClass> StorageClasses = new Dictionary<string, Domain.Volumes.VolumeClass>(StringComparer.Ordinal)
    {
        ["block"] = Domain.Volumes.VolumeClass.Block, ["gfs"] = Domain.Volumes.VolumeClass.Gfs, ["red"] = Domain.Volumes.VolumeClass.Red,
    };

    private static ClaimVolume Claim(V1PersistentVolumeClaim claim, string name, string ns, ClusterObjects objects, Domain.Kubernetes.KubernetesCluster cluster)
    {
        string Invalid(string message) => throw KubeApiException.Invalid("PersistentVolumeClaim", name, message);
        var spec = claim.Spec ?? throw KubeApiException.Invalid("PersistentVolumeClaim", name, "spec: Required value");
        var className = spec.StorageClassName ?? "block";
        if (!StorageClasses.TryGetValue(className, out var volumeClass))
            Invalid($"spec.storageClassName: Unsupported value: \"{className}\": supported values: \"block\", \"gfs\", \"red\"");
        if (Quantity(spec.Resources?.Requests, null, "storage") is not { } bytes || bytes <= 0) Invalid("spec.resources.requests[storage]: Required value");
        var sizeGiB = (int)Math.Min(int.MaxValue, Math.Ceiling(bytes / (1024m * 1024m * 1024m)));
        var modes = spec.AccessModes ?? [];
        if (modes.Count == 0) Invalid("spec.accessModes: Required value");
        if (volumeClass != Domain.Volumes.VolumeClass.Gfs && modes.Any(m => m is "ReadWriteMany"))
            Invalid($"spec.accessModes: Unsupported value: \"ReadWriteMany\": a {className} volume is one disk for one microVM; storageClassName gfs is shared");
        // Kraud cannot resize or change a volume's class: a claim's spec stays as it was made, as Kubernetes keeps it (bar growth).
        if (objects.View(KubeKinds.PersistentVolumeClaim, ns, name) is { } existing
            && KubeJson.ToModel<V1PersistentVolumeClaim>(JsonNode.Parse(existing.Object.Manifest)!).Spec is { } before
            && ((before.StorageClassName ?? "block") != className || Quantity(before.Resources?.Requests, null, "storage") != bytes))
            Invalid("spec: Forbidden: spec is immutable after creation: Kraud cannot resize a volume or change its class");
        return new ClaimVolume(volumeClass, sizeGiB, cluster.ControlPlaneZone, cluster.Name);
    }

    private static void Service(V1Service service, string name, JsonObject manifest)
    {
        var type = service.Spec?.Type ?? "ClusterIP";
        if (type is not ("ClusterIP" or "LoadBalancer" or "NodePort" or "ExternalName"))
            throw KubeApiException.Invalid("Service", name, $"spec.type: Unsupported value: \"{type}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"");
        // A managed ingress routes HTTP by host and path: one host has one route, so one port.
        if (type == "LoadBalancer" && service.Spec?.Ports is { Count: > 1 } many)
            throw KubeApiException.Invalid("Service", name,
                $"spec.ports: Too many: {many.Count}: a LoadBalancer Service is a Kraud managed ingress, which routes one HTTP port (make a Service per port)");
        foreach (var port in service.Spec?.Ports ?? [])
            if (port.Port is < 1 or > 65535)
                throw KubeApiException.Invalid("Service", name, $"spec.ports[].port: Invalid value: {port.Port}: must be between 1 and 65535, inclusive");
        var spec = manifest["spec"] as JsonObject ?? (JsonObject)(manifest["spec"] = new JsonObject());
        spec["type"] ??= type;
        // Kraud has no virtual service addresses: a service is found by name in the VPC's resolver, which answers with the
        // microVMs' own addresses (a headless service, in Kubernetes' terms).
        spec["clusterIP"] ??= "None";
        spec["clusterIPs"] ??= new JsonArray("None");
        spec["sessionAffinity"] ??= "None";
    }

    private static (WorkloadIntent, PodSpec) Deployment(V1Deployment d, string name, string ns, ClusterObjects objects, Domain.Kubernetes.KubernetesCluster cluster,
        JsonObject manifest)
    {
        string Invalid(string message) => throw KubeApiException.Invalid("Deployment", name, message);
        var spec = d.Spec ?? throw KubeApiException.Invalid("Deployment", name, "spec: Required value");
        var replicas = spec.Replicas ?? 1;
        if (replicas < 0) Invalid($"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0");
        if (replicas > PodDecider.MaxReplicas) Invalid($"spec.replicas: Invalid value: {replicas}: Kraud runs at most {PodDecider.MaxReplicas} replicas of a pod");
        var labels = spec.Template?.Metadata?.Labels ?? new Dictionary<string, string>();
        if (spec.Selector?.MatchLabels is not { Count: > 0 } selector) throw KubeApiException.Invalid("Deployment", name, "spec.selector: Required value");
        if (spec.Selector.MatchExpressions is { Count: > 0 }) Invalid("spec.selector.matchExpressions: Kraud selects a Deployment's pods by matchLabels only");
        if (selector.Any(s => !labels.TryGetValue(s.Key, out var v) || v != s.Value))
            Invalid("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`");
        var containers = spec.Template?.Spec?.Containers ?? [];
        if (containers.Count == 0) Invalid("spec.template.spec.containers: Required value");
        if (containers.Count > 1)
            Invalid($"spec.template.spec.containers: Too many: {containers.Count}: Kraud runs one container per microVM (a pod is a microVM); split them into Deployments");
        if (spec.Template!.Spec.InitContainers is { Count: > 0 }) Invalid("spec.template.spec.initContainers: Kraud does not run init containers");
        var c = containers[0];
        if (string.IsNullOrWhiteSpace(c.Name)) Invalid("spec.template.spec.containers[0].name: Required value");
        if (string.IsNullOrWhiteSpace(c.Image)) Invalid("spec.template.spec.containers[0].image: Required value");
        var mounts = Mounts(spec.Template.Spec.Volumes ?? [], c.VolumeMounts ?? [], ns, objects, Invalid);

        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var from in c.EnvFrom ?? [])
        {
            if (from.ConfigMapRef is { } cm)
                foreach (var (k, v) in ConfigMapData(objects, ns, cm.Name, cm.Optional == true, name)) env[(from.Prefix ?? "") + k] = v;
            if (from.SecretRef is { } s)
                foreach (var k in SecretKeys(objects, ns, s.Name, s.Optional == true, name)) env[(from.Prefix ?? "") + k.Key] = KubeSecretReferences.Reference(k.Id, k.Key);
        }
        foreach (var e in c.Env ?? [])
        {
            if (e.ValueFrom is null)
            {
                env[e.Name] = e.Value ?? "";
                continue;
            }
            if (e.ValueFrom.ConfigMapKeyRef is { } cmKey)
            {
                var data = ConfigMapData(objects, ns, cmKey.Name, cmKey.Optional == true, name);
                if (data.TryGetValue(cmKey.Key, out var value)) env[e.Name] = value;
                else if (cmKey.Optional != true) Invalid($"spec.template.spec.containers[0].env[{e.Name}]: ConfigMap \"{cmKey.Name}\" has no key \"{cmKey.Key}\"");
            }
            else if (e.ValueFrom.SecretKeyRef is { } secretKey)
            {
                var keys = SecretKeys(objects, ns, secretKey.Name, secretKey.Optional == true, name);
                if (keys.FirstOrDefault(k => k.Key == secretKey.Key) is { Key: not null } found) env[e.Name] = KubeSecretReferences.Reference(found.Id, found.Key);
                else if (secretKey.Optional != true) Invalid($"spec.template.spec.containers[0].env[{e.Name}]: Secret \"{secretKey.Name}\" has no key \"{secretKey.Key}\"");
            }
            else Invalid($"spec.template.spec.containers[0].env[{e.Name}].valueFrom: Kraud resolves configMapKeyRef and secretKeyRef only");
        }
        var resources = c.Resources;
        var cpu = Quantity(resources?.Limits, resources?.Requests, "cpu") is { } cores ? (int)Math.Ceiling(cores) : 1;
        var memory = Quantity(resources?.Limits, resources?.Requests, "memory") is { } bytes ? (int)Math.Ceiling(bytes / (1024m * 1024m)) : 256;
        var command = (c.Command ?? []).Concat(c.Args ?? []).ToList();
        var pod = new PodSpec(name, KubeNames.KraudNamespace(cluster.Name, ns), c.Image, command, env, Math.Max(1, cpu), Math.Max(64, memory), cluster.ControlPlaneZone,
            false, 0, mounts.Count == 0 ? null : mounts);
        var templateText = KubeJson.CanonicalText(manifest["spec"]?["template"]);
        var specNode = (JsonObject)manifest["spec"]!;
        specNode["replicas"] = replicas;
        return (new WorkloadIntent(KubeNames.Hash(templateText, 10), replicas, templateText), pod);
    }

    /// <summary>
    /// The pod's volumes as Kraud mounts: each persistentVolumeClaim volume the container mounts is the claim's Kraud volume
    /// (its class is filled in by the Volumes slice). ConfigMap and Secret volumes are not mounted (env only).
    /// </summary>
    private static List<VolumeMount> Mounts(IList<V1Volume> volumes, IList<V1VolumeMount> volumeMounts, string ns, ClusterObjects objects,
        Func<string, string> invalid)
    {
        var mounts = new List<VolumeMount>();
        foreach (var volume in volumes)
            if (volume.PersistentVolumeClaim is null)
                invalid($"spec.template.spec.volumes[{volume.Name}]: Kraud mounts persistentVolumeClaim volumes only (ConfigMaps and Secrets go into env)");
        foreach (var mount in volumeMounts)
        {
            var volume = volumes.FirstOrDefault(v => v.Name == mount.Name);
            if (volume?.PersistentVolumeClaim is not { } source)
            {
                invalid($"spec.template.spec.containers[0].volumeMounts[{mount.Name}]: Not found: no volume named \"{mount.Name}\"");
                continue;
            }
            if (objects.View(KubeKinds.PersistentVolumeClaim, ns, source.ClaimName) is not { } claim)
            {
                invalid($"spec.template.spec.volumes[{volume.Name}].persistentVolumeClaim: PersistentVolumeClaim \"{source.ClaimName}\" not found in namespace \"{ns}\" (apply it first)");
                continue;
            }
            mounts.Add(new VolumeMount(KubeNames.ClaimVolumeId(claim.Id, claim.Object.Uid), mount.MountPath, mount.ReadOnlyProperty == true || source.ReadOnlyProperty == true,
                Domain.Volumes.VolumeClass.Block));
        }
        return mounts;
    }

    private static decimal? Quantity(IDictionary<string, ResourceQuantity>? limits, IDictionary<string, ResourceQuantity>? requests, string name) =>
        (limits?.TryGetValue(name, out var l) == true ? l : requests?.TryGetValue(name, out var r) == true ? r : null)?.ToDecimal();

    private static IReadOnlyDictionary<string, string> ConfigMapData(ClusterObjects objects, string ns, string name, bool optional, string deployment)
    {
        if (objects.View(KubeKinds.ConfigMap, ns, name) is not { } view)
            return optional ? new Dictionary<string, string>() : throw KubeApiException.Invalid("Deployment", deployment,
                $"spec.template.spec.containers[0]: ConfigMap \"{name}\" not found in namespace \"{ns}\" (apply it first)");
        return new Dictionary<string, string>(KubeJson.ToModel<V1ConfigMap>(JsonNode.Parse(view.Object.Manifest)!).Data ?? new Dictionary<string, string>());
    }

    private static IReadOnlyList<(Guid Id, string Key)> SecretKeys(ClusterObjects objects, string ns, string name, bool optional, string deployment)
    {
        if (objects.View(KubeKinds.Secret, ns, name) is not { } view)
            return optional ? [] : throw KubeApiException.Invalid("Deployment", deployment,
                $"spec.template.spec.containers[0]: Secret \"{name}\" not found in namespace \"{ns}\" (apply it first)");
        return (JsonNode.Parse(view.Object.Manifest)!["data"] as JsonObject ?? []).Select(p => (view.Id, p.Key)).ToList();
    }

    /// <summary>Paths of the body's fields the wire type does not have (what Kubernetes' strict decoding refuses).</summary>
    public static void UnknownFields(JsonNode? node, Type type, string path, List<string> unknown)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (node is JsonObject o)
        {
            if (Dictionary(type) is { } valueType)
            {
                foreach (var (key, value) in o) UnknownFields(value, valueType, $"{path}.{key}", unknown);
                return;
            }
            if (type.IsPrimitive || type == typeof(string) || type == typeof(object) || type.Namespace != "k8s.Models" || type == typeof(IntOrString)) return;
            var properties = JsonProperties(type);
            foreach (var (key, value) in o)
            {
                if (path.Length == 0 && key is "apiVersion" or "kind") continue;
                if (!properties.TryGetValue(key, out var property))
                {
                    unknown.Add(path.Length == 0 ? key : $"{path[1..]}.{key}");
                    continue;
                }
                UnknownFields(value, property.PropertyType, $"{path}.{key}", unknown);
            }
        }
        else if (node is JsonArray a && Element(type) is { } elementType)
            for (var i = 0; i < a.Count; i++) UnknownFields(a[i], elementType, $"{path}[{i}]", unknown);
    }

    public static Dictionary<string, PropertyInfo> JsonProperties(Type type) => type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Select(p => (p, name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name))
        .Where(x => x.name is not null).ToDictionary(x => x.name!, x => x.p, StringComparer.Ordinal);

    public static Type? Dictionary(Type type) => type.IsGenericType && type.GetGenericTypeDefinition() is var g && (g == typeof(IDictionary<,>) || g == typeof(Dictionary<,>))
        ? type.GetGenericArguments()[1]
        : null;

    public static Type? Element(Type type) => type.IsArray ? type.GetElementType()
        : type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type) && Dictionary(type) is null ? type.GetGenericArguments()[0] : null;
}

/// <summary>
/// A Secret's value in a pod's environment is a reference, so the pod's events never hold it; the host runtime's boot
/// command gets the value, read from the sealed document when it is sent.
/// </summary>
public static partial class KubeSecretReferences
{
    public static string Reference(Guid secretId, string key) => $"${{k8s-secret:{secretId:D}/{key}}}";

    [System.Text.RegularExpressions.GeneratedRegex(@"\$\{k8s-secret:(?<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(?<key>[-._a-zA-Z0-9]+)\}",
        System.Text.RegularExpressions.RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial System.Text.RegularExpressions.Regex Pattern();

    /// <summary>The environment with references to the tenant's own Secrets replaced by their (decoded) values.</summary>
    public static async Task<IReadOnlyDictionary<string, string>> ResolveAsync(Marten.IQuerySession session, SecretSeal seal, Guid tenantId,
        IReadOnlyDictionary<string, string> env)
    {
        var ids = References(env);
        if (ids.Length == 0) return env;
        var sealedData = (await ReadAhead.LoadManyAsync<KubeSecretData, Guid>(session, ids)).Where(s => s.TenantId == tenantId).ToDictionary(s => s.Id, s => seal.Open(s.Sealed, s.Id));
        return env.ToDictionary(e => e.Key, e => Pattern().Replace(e.Value, m =>
            sealedData.TryGetValue(Guid.Parse(m.Groups["id"].Value), out var values) && values.TryGetValue(m.Groups["key"].Value, out var b64)
                ? Encoding.UTF8.GetString(Convert.FromBase64String(b64))
                : m.Value));
    }

    /// <summary>The ids of the Secrets an environment refers to.</summary>
    public static Guid[] References(IReadOnlyDictionary<string, string> env) =>
        env.Values.SelectMany(v => Pattern().Matches(v)).Select(m => Guid.Parse(m.Groups["id"].Value)).Distinct().ToArray();
}

/// <summary>Kubernetes Secrets in a booting microVM's environment (see <see cref="IPodEnvironment"/>).</summary>
public sealed class KubeSecretsEnvironment(SecretSeal seal) : IPodEnvironment
{
    public Task<IReadOnlyDictionary<string, string>> ResolveAsync(Marten.IQuerySession session, Pod pod) =>
        KubeSecretReferences.ResolveAsync(session, seal, pod.TenantId, pod.Spec.Env);

    public void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods) =>
        ahead.LoadMany<KubeSecretData, Guid>(pods.SelectMany(p => KubeSecretReferences.References(p.Spec.Env)), s => s.Id);
}
