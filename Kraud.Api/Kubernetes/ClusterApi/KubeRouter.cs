using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Kraud.Api.Common;
using Kraud.Domain.KubernetesApi;
using Marten;
using Wolverine;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// Every request of the clusters' Kubernetes API: /clusters/&lt;id&gt;/… with the paths kubectl and client libraries use
/// (discovery, OpenAPI, and /api/v1 and /apis/apps/v1 resources with their verbs).
/// </summary>
public sealed class KubeRouter(IServiceProvider services)
{
    public async Task HandleAsync(HttpContext http)
    {
        KubeApiException refusal;
        try
        {
            var segments = (http.Request.Path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
            if (segments is not ["clusters", var id, .. var rest] || !Guid.TryParse(id, out var clusterId))
                throw KubeApiException.NotFound("path", http.Request.Path.Value ?? "/");
            var ct = http.RequestAborted;
            var caller = await ClusterAccess.AuthenticateAsync(http, clusterId, services, ct);
            if (http.Request.Host.Host is var host && host.EndsWith(ServingCertificates.Domain, StringComparison.OrdinalIgnoreCase) &&
                !string.Equals(host, ServingCertificates.ServerName(clusterId), StringComparison.OrdinalIgnoreCase))
                throw KubeApiException.BadRequest($"The TLS server name {host} is another cluster's than the path's ({clusterId}).");
            await using var scope = services.CreateAsyncScope();
            var request = new KubeRequest(http, caller, scope.ServiceProvider, rest);
            await request.DispatchAsync();
            return;
        }
        catch (KubeApiException e)
        {
            refusal = e;
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e) when (KubeStatus.FromKraud(e, "", "") is { } kraud)
        {
            refusal = kraud;
        }
        catch (Exception e)
        {
            // A bug of Kraud's: logged with its stack, and answered as the API server answers one (500, InternalError), so
            // kubectl prints what went wrong instead of an empty body.
            Logger.LogError(e, "Kubernetes API request {Method} {Path} failed", http.Request.Method, http.Request.Path);
            refusal = new KubeApiException(500, "InternalError", $"Internal error occurred: {e.GetType().Name}: {e.Message}");
        }
        if (http.Response.HasStarted) return;
        try
        {
            await KubeStatus.WriteAsync(http, refusal);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Logger.LogError(e, "Writing the Kubernetes Status {Code} for {Method} {Path} failed", refusal.Code, http.Request.Method, http.Request.Path);
            throw;
        }
    }

    private ILogger Logger => services.GetRequiredService<ILogger<KubeRouter>>();
}

/// <summary>One request, authenticated, with the services of its own scope.</summary>
public sealed class KubeRequest(HttpContext http, KubeCaller caller, IServiceProvider services, string[] path)
{
    private readonly KubeLog log = services.GetRequiredService<KubeLog>();
    private readonly SecretSeal seal = services.GetRequiredService<SecretSeal>();
    private readonly TimeProvider time = services.GetRequiredService<TimeProvider>();
    private CancellationToken Ct => http.RequestAborted;
    private string Method => http.Request.Method;

    public async Task DispatchAsync()
    {
        switch (path)
        {
            case ["version"]:
                await WriteAsync(new VersionInfo
                {
                    Major = caller.Cluster.Version.Split('.')[0], Minor = caller.Cluster.Version.Split('.')[1], GitVersion = $"v{caller.Cluster.Version}.0-kraud",
                    GitCommit = "kraud", GitTreeState = "clean", BuildDate = "2026-01-01T00:00:00Z", GoVersion = "kraud", Compiler = "kraud", Platform = "linux/amd64",
                });
                return;
            case ["api"]:
                await WriteAsync(new V1APIVersions
                {
                    Kind = "APIVersions", Versions = ["v1"],
                    ServerAddressByClientCIDRs = [new V1ServerAddressByClientCIDR { ClientCIDR = "0.0.0.0/0", ServerAddress = http.Request.Host.Value ?? "" }],
                });
                return;
            case ["apis"]:
                await WriteAsync(KubeKinds.Groups());
                return;
            case ["api", "v1"]:
                await WriteAsync(KubeKinds.ResourceList("", "v1"));
                return;
            case ["apis", var group, var version] when KubeKinds.All.Any(k => k.Group == group && k.Version == version):
                await WriteAsync(KubeKinds.ResourceList(group, version));
                return;
            case ["openapi", "v2"]:
                await OpenApi.WriteV2Async(http, caller.Cluster.Version);
                return;
            case ["openapi", "v3"]:
                await OpenApi.WriteV3IndexAsync(http, caller.Cluster.Id);
                return;
            case ["openapi", "v3", .. var gv]:
                await OpenApi.WriteV3Async(http, string.Join('/', gv), caller.Cluster.Version);
                return;
        }
        var route = Route.Parse(path) ?? throw KubeApiException.NotFound("the server could not find the requested resource", string.Join('/', path));
        await ResourceAsync(route);
    }

    private sealed record Route(KubeKind Kind, string? Namespace, string? Name, string? Subresource)
    {
        public static Route? Parse(string[] path)
        {
            (string group, string version, string[] rest) = path switch
            {
                ["api", var v, .. var r] => ("", v, r),
                ["apis", var g, var v, .. var r] => (g, v, r),
                _ => ("", "", []),
            };
            if (version.Length == 0) return null;
            KubeKind? Kind(string plural) => KubeKinds.Find(group, version, plural);
            return rest switch
            {
                ["namespaces", var ns, var plural, .. var tail] when Kind(plural) is { Namespaced: true } k => tail switch
                {
                    [] => new Route(k, ns, null, null),
                    [var name] => new Route(k, ns, name, null),
                    [var name, var sub] when k.Subresources.Contains(sub) => new Route(k, ns, name, sub),
                    _ => null,
                },
                [var plural] when Kind(plural) is { } k => new Route(k, null, null, null),
                [var plural, var name] when Kind(plural) is { Namespaced: false } k => new Route(k, null, name, null),
                [var plural, var name, "status"] when Kind(plural) is { Namespaced: false } k => new Route(k, null, name, "status"),
                _ => null,
            };
        }
    }

    private Task<ClusterObjects> SnapshotAsync()
    {
        var session = services.GetRequiredService<IQuerySession>();
        return ClusterObjects.LoadAsync(caller.Cluster, session, log, seal, time.GetUtcNow(), Ct);
    }

    private string Query(string name) => http.Request.Query[name].ToString();

    private async Task ResourceAsync(Route route)
    {
        var kind = route.Kind;
        if (route.Namespace is { } ns) Domain.Common.Names.RequireDnsLabel(ns, "namespace");
        switch (Method, route.Name, route.Subresource)
        {
            case ("GET", null, _) when Query("watch") is "true" or "1":
                await new KubeWatch(http, caller, services, kind, route.Namespace, Selectors.Parse(Query("labelSelector"), Query("fieldSelector")),
                    Query("resourceVersion"), WantsTable()).RunAsync();
                return;
            case ("GET", null, _):
                await ListAsync(kind, route.Namespace);
                return;
            case ("GET", { } name, null):
                await WriteItemAsync((await SnapshotAsync()).Get(kind, route.Namespace, name) ?? throw NotFound(kind, name));
                return;
            case ("GET", { } name, "status"):
                await WriteItemAsync((await SnapshotAsync()).Get(kind, route.Namespace, name) ?? throw NotFound(kind, name));
                return;
            case ("GET", { } name, "scale"):
                await WriteAsync(Scale((await SnapshotAsync()).Get(kind, route.Namespace, name) ?? throw NotFound(kind, name)));
                return;
            case ("GET", { } name, "log"):
                await PodLogs.WriteAsync(http, (await SnapshotAsync()).Get(kind, route.Namespace, name) ?? throw NotFound(kind, name), caller.Cluster.TenantId, services);
                return;
            case ("POST", null, null) when kind.Stored:
                await CreateAsync(kind, route.Namespace);
                return;
            case ("PUT", { } name, null) when kind.Stored:
                await ReplaceAsync(kind, route.Namespace, name, await BodyAsync(), patched: false);
                return;
            case ("PATCH", { } name, null) when kind.Stored:
                await PatchAsync(kind, route.Namespace, name);
                return;
            case ("PUT" or "PATCH", { } name, "scale") when kind == KubeKinds.Deployment:
                await ScaleAsync(kind, route.Namespace!, name);
                return;
            case ("DELETE", { } name, null) when kind == KubeKinds.Pod:
                await DeletePodAsync(route.Namespace!, name);
                return;
            case ("DELETE", { } name, null) when kind.Stored:
                await DeleteAsync(kind, route.Namespace, name);
                return;
        }
        throw KubeApiException.MethodNotAllowed(kind.Stored
            ? $"{Method} is not supported on {kind.Plural}{(route.Subresource is null ? "" : "/" + route.Subresource)}"
            : $"{kind.Plural} are Kraud's to make and change ({Method} is not supported): change the Deployment that owns them");
    }

    private static KubeApiException NotFound(KubeKind kind, string name) =>
        KubeApiException.NotFound($"{kind.Plural}{(kind.Group.Length == 0 ? "" : "." + kind.Group)}", name);

    private bool WantsTable() => http.Request.Headers.Accept.ToString().Contains("as=Table", StringComparison.Ordinal);

    private async Task ListAsync(KubeKind kind, string? ns)
    {
        // A list's items are the cluster at its resourceVersion, so a watch from that version misses nothing after them.
        var snapshot = await ClusterObjects.LoadAtHeadAsync(caller.Cluster, services.GetRequiredService<IQuerySession>(), log, seal, time.GetUtcNow(), Ct);
        var selectors = Selectors.Parse(Query("labelSelector"), Query("fieldSelector"));
        var items = snapshot.List(kind, ns).Where(selectors.Matches).ToList();
        var rv = snapshot.Head.ToString(CultureInfo.InvariantCulture);
        if (WantsTable())
        {
            await WriteJsonAsync(Tables.For(kind, items, rv, time.GetUtcNow()));
            return;
        }
        var list = new JsonObject
        {
            ["apiVersion"] = kind.ApiVersion, ["kind"] = kind.ListKind, ["metadata"] = new JsonObject { ["resourceVersion"] = rv },
            ["items"] = new JsonArray(items.Select(i => (JsonNode)i.Json).ToArray()),
        };
        await WriteJsonAsync(list);
    }

    private Task WriteItemAsync(KubeItem item) => WantsTable()
        ? WriteJsonAsync(Tables.For(item.Kind, [item], item.ResourceVersion.ToString(CultureInfo.InvariantCulture), time.GetUtcNow()))
        : WriteJsonAsync(item.Json);

    private async Task<JsonObject> BodyAsync()
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(Ct);
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw KubeApiException.BadRequest("the request body is not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw KubeApiException.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
    }

    private async Task CreateAsync(KubeKind kind, string? ns)
    {
        var body = await BodyAsync();
        var name = KubeJson.Text(body, "metadata.name");
        if (string.IsNullOrEmpty(name) && KubeJson.Text(body, "metadata.generateName") is { Length: > 0 } prefix)
            name = prefix + KubeNames.Hash(Guid.NewGuid().ToString(), 5);
        if (string.IsNullOrEmpty(name)) throw KubeApiException.Invalid(kind.Kind, "", "metadata.name: Required value: name or generateName is required");
        CheckKind(kind, body, ns, name);
        var (item, created) = await PutAsync(kind, ns, name, body, PutMode.Create, expectedVersion: null, expectedUid: null);
        http.Response.StatusCode = created ? 201 : 200;
        await WriteJsonAsync(item.Json);
    }

    private void CheckKind(KubeKind kind, JsonObject body, string? ns, string name)
    {
        if (KubeJson.Text(body, "apiVersion") is { } apiVersion && apiVersion != kind.ApiVersion || KubeJson.Text(body, "kind") is { } k && k != kind.Kind)
            throw KubeApiException.BadRequest($"the body is a {KubeJson.Text(body, "kind")} of {KubeJson.Text(body, "apiVersion")}, not a {kind.Kind} of {kind.ApiVersion}");
        if (kind.Namespaced && KubeJson.Text(body, "metadata.namespace") is { Length: > 0 } bodyNs && bodyNs != ns)
            throw KubeApiException.BadRequest($"the namespace of the provided object ({bodyNs}) does not match the namespace sent on the request ({ns})");
        if (KubeJson.Text(body, "metadata.name") is { Length: > 0 } bodyName && bodyName != name)
            throw KubeApiException.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({name})");
    }

    private async Task ReplaceAsync(KubeKind kind, string? ns, string name, JsonObject body, bool patched, int? version = null)
    {
        CheckKind(kind, body, ns, name);
        var snapshot = await SnapshotAsync();
        var view = snapshot.View(kind, ns, name) ?? throw NotFound(kind, name);
        var current = snapshot.Render(view);
        // An update that names a resourceVersion must name the current one (409 otherwise); a patch is against what it read.
        if (!patched && KubeJson.Text(body, "metadata.resourceVersion") is { Length: > 0 } rv && rv != current.ResourceVersion.ToString(CultureInfo.InvariantCulture))
            throw KubeApiException.Conflict($"{kind.Plural}{(kind.Group.Length == 0 ? "" : "." + kind.Group)}", name,
                "the object has been modified; please apply your changes to the latest version and try again");
        var (item, _) = await PutAsync(kind, ns, name, body, PutMode.Replace, version ?? view.Version, view.Object.Uid, snapshot);
        await WriteJsonAsync(item.Json);
    }

    private async Task PatchAsync(KubeKind kind, string? ns, string name)
    {
        var contentType = http.Request.ContentType ?? "";
        var patch = await BodyAsync();
        for (var attempt = 0; ; attempt++)
        {
            var snapshot = await SnapshotAsync();
            var view = snapshot.View(kind, ns, name) ?? throw NotFound(kind, name);
            var current = snapshot.Render(view).Json;
            JsonNode? merged = contentType switch
            {
                var t when t.StartsWith("application/merge-patch+json", StringComparison.Ordinal) => Patches.MergePatch(current, patch),
                var t when t.StartsWith("application/strategic-merge-patch+json", StringComparison.Ordinal) => Patches.StrategicMergePatch(current, patch),
                _ => throw new KubeApiException(415, "UnsupportedMediaType",
                    $"the patch type {contentType} is not supported: use merge (application/merge-patch+json) or strategic (application/strategic-merge-patch+json)"),
            };
            if (KubeJson.Text(patch, "metadata.resourceVersion") is { Length: > 0 } rv && rv != KubeJson.Text(current, "metadata.resourceVersion"))
                throw KubeApiException.Conflict(kind.Plural, name, "the object has been modified; please apply your changes to the latest version and try again");
            try
            {
                await ReplaceAsync(kind, ns, name, (JsonObject)merged!, patched: true, view.Version);
                return;
            }
            catch (KubeApiException e) when (e.Code == 409 && attempt < 3)
            {
                // Another writer came first: the patch applies to what is there now, as the API server does.
            }
        }
    }

    private async Task<(KubeItem Item, bool Created)> PutAsync(KubeKind kind, string? ns, string name, JsonObject body, PutMode mode, int? expectedVersion,
        Guid? expectedUid, ClusterObjects? snapshot = null)
    {
        snapshot ??= await SnapshotAsync();
        if (kind.Namespaced && !snapshot.NamespaceExists(ns!)) throw KubeApiException.NotFound("namespaces", ns!);
        if (kind.Namespaced && mode == PutMode.Create && snapshot.NamespaceTerminating(ns!))
            throw KubeApiException.Forbidden($"{kind.Plural} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated");
        if (kind == KubeKinds.Namespace && ClusterObjects.BuiltInNamespaces.Contains(name))
            throw mode == PutMode.Create ? new KubeApiException(409, "AlreadyExists", $"namespaces \"{name}\" already exists", "namespaces", name)
                : KubeApiException.MethodNotAllowed($"namespace {name} is built in and cannot be changed");
        var key = new KubeObjectKey(caller.Cluster.Id, kind.Kind, ns ?? "", name);
        var warnings = new List<string>();
        var admitted = Admission.Admit(kind, body, ns, name, Query("fieldValidation"), snapshot, caller.Cluster, seal, key.StreamId, warnings);
        foreach (var w in warnings) http.Response.Headers.Append("Warning", $"299 - \"{w}\"");
        var before = snapshot.View(kind, ns, name);
        var specChanged = before is null || KubeSpec(before.Object.Manifest) != admitted.SpecText;
        var now = time.GetUtcNow();
        var command = new PutKubeObject(key, caller.Cluster.TenantId, kind.ApiVersion, Guid.NewGuid(), admitted.Text, specChanged, mode, admitted.Workload,
            caller.Principal, now, expectedUid);
        var sealedSecret = admitted.SecretData is { } data ? seal.Seal(data, key.StreamId) : null;
        if (Query("dryRun") is "All")
        {
            return (new KubeItem(kind, ns ?? "", name, 0, admitted.Manifest, key.StreamId), mode == PutMode.Create);
        }
        await InvokeAsync(new KubeObjectRequest(command, expectedVersion, admitted.Template, sealedSecret, admitted.Claim), kind, name);
        var after = await SnapshotAsync();
        return (after.Get(kind, ns, name) ?? throw NotFound(kind, name), before is null);
    }

    private static string KubeSpec(string manifest)
    {
        var node = JsonNode.Parse(manifest)!;
        return KubeJson.CanonicalText(node["spec"]) + KubeJson.CanonicalText(node["data"]);
    }

    private Task InvokeAsync(KubeObjectRequest request, KubeKind kind, string name) => InvokeAsync(request, request.Command.GetType().Name, kind, name);

    private async Task InvokeAsync(object request, string commandName, KubeKind kind, string name)
    {
        var bus = services.GetRequiredService<IMessageBus>();
        var options = new DeliveryOptions();
        if (http.Connection.RemoteIpAddress is { } address) options.Headers[Common.SessionStamp.ClientHeader] = address.ToString();
        KubeApiException? refusal;
        try
        {
            await bus.InvokeAsync(request, options, Ct);
            return;
        }
        catch (Exception e) when (KubeStatus.FromKraud(e, kind.Plural, name) is not null)
        {
            refusal = KubeStatus.FromKraud(e, kind.Plural, name)!;
        }
        // Refused: nothing was appended, and the refusal is audited in the chain of refused commands.
        await bus.PublishAsync(new Common.CommandRejected(time.GetUtcNow(), caller.Cluster.TenantId, caller.Principal.Actor,
            commandName, refusal.Reason, refusal.Message, null));
        throw refusal;
    }

    private async Task DeleteAsync(KubeKind kind, string? ns, string name)
    {
        if (kind == KubeKinds.Namespace && ClusterObjects.BuiltInNamespaces.Contains(name))
            throw KubeApiException.Forbidden($"namespaces \"{name}\" is forbidden: this namespace may not be deleted");
        var snapshot = await SnapshotAsync();
        var item = snapshot.Get(kind, ns, name) ?? throw NotFound(kind, name);
        var key = new KubeObjectKey(caller.Cluster.Id, kind.Kind, ns ?? "", name);
        if (Query("dryRun") is not "All")
            await InvokeAsync(new KubeObjectRequest(new DeleteKubeObject(key, caller.Principal, time.GetUtcNow())), kind, name);
        await WriteJsonAsync(KubeStatus.Success(kind.Plural, name, KubeJson.Text(item.Json, "metadata.uid")));
    }

    private async Task DeletePodAsync(string ns, string name)
    {
        var snapshot = await SnapshotAsync();
        var pod = snapshot.Get(KubeKinds.Pod, ns, name) ?? throw NotFound(KubeKinds.Pod, name);
        var deployment = snapshot.List(KubeKinds.Deployment, ns).Select(d => snapshot.View(KubeKinds.Deployment, ns, d.Name)!)
            .Single(v => v.Object.ReplicaSets.Any(r => r.PodId == pod.StreamId));
        // A replica still waiting for a host has no microVM yet: there is nothing to replace.
        if (KubeJson.Text(pod.Json, "spec.nodeName") is { Length: > 0 } && Query("dryRun") is not "All")
        {
            // A pod's uid is its microVM's id (see ClusterObjects.PodsOf).
            var vmId = Guid.Parse(KubeJson.Text(pod.Json, "metadata.uid")!);
            await InvokeAsync(new DeleteKubePod(deployment.Id, pod.StreamId, vmId, name, caller.Principal, time.GetUtcNow()), nameof(DeleteKubePod),
                KubeKinds.Pod, name);
        }
        // As an API server answers a graceful delete: the pod, terminating (clients' typed delete reads a Pod back).
        var terminating = (JsonObject)pod.Json.DeepClone();
        KubeJson.Metadata(terminating)["deletionTimestamp"] ??= KubeJson.Time(time.GetUtcNow());
        await WriteJsonAsync(terminating);
    }

    private static V1Scale Scale(KubeItem deployment) => new()
    {
        ApiVersion = "autoscaling/v1", Kind = "Scale",
        Metadata = new V1ObjectMeta
        {
            Name = deployment.Name, NamespaceProperty = deployment.Namespace, Uid = KubeJson.Text(deployment.Json, "metadata.uid"),
            ResourceVersion = deployment.ResourceVersion.ToString(CultureInfo.InvariantCulture),
            CreationTimestamp = DateTime.Parse(KubeJson.Text(deployment.Json, "metadata.creationTimestamp")!, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal),
        },
        Spec = new V1ScaleSpec { Replicas = int.Parse(KubeJson.Text(deployment.Json, "spec.replicas") ?? "1", CultureInfo.InvariantCulture) },
        Status = new V1ScaleStatus
        {
            Replicas = int.Parse(KubeJson.Text(deployment.Json, "status.replicas") ?? "0", CultureInfo.InvariantCulture),
            Selector = string.Join(',', (deployment.Json["spec"]?["selector"]?["matchLabels"] as JsonObject ?? []).Select(p => $"{p.Key}={p.Value}")),
        },
    };

    private async Task ScaleAsync(KubeKind kind, string ns, string name)
    {
        var body = await BodyAsync();
        var snapshot = await SnapshotAsync();
        var item = snapshot.Get(kind, ns, name) ?? throw NotFound(kind, name);
        var scale = KubeJson.ToNode(Scale(item));
        var desired = Method == "PUT" ? body : (JsonObject)Patches.MergePatch(scale, body)!;
        if (Method == "PUT" && KubeJson.Text(body, "metadata.resourceVersion") is { Length: > 0 } rv && rv != item.ResourceVersion.ToString(CultureInfo.InvariantCulture))
            throw KubeApiException.Conflict("deployments.apps", name, "the object has been modified; please apply your changes to the latest version and try again");
        if (KubeJson.Text(desired, "spec.replicas") is not { } text || !int.TryParse(text, CultureInfo.InvariantCulture, out var replicas))
            throw KubeApiException.Invalid("Scale", name, "spec.replicas: Required value");
        var deployment = (JsonObject)item.Json.DeepClone();
        deployment.Remove("status");
        ((JsonObject)deployment["spec"]!)["replicas"] = replicas;
        var view = snapshot.View(kind, ns, name)!;
        await PutAsync(kind, ns, name, deployment, PutMode.Replace, view.Version, view.Object.Uid, snapshot);
        var after = await SnapshotAsync();
        await WriteAsync(Scale(after.Get(kind, ns, name) ?? throw NotFound(kind, name)));
    }

    private Task WriteAsync(object model)
    {
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync(KubernetesJson.Serialize(model), Ct);
    }

    private Task WriteJsonAsync(JsonNode node)
    {
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync(node.ToJsonString(), Ct);
    }
}
