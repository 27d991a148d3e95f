using k8s.Models;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// A resource the cluster's API serves. Stored kinds are Kubernetes objects kept as Kraud event streams; the others are
/// read from Kraud's own resources (pods and ReplicaSets from the Deployments' Kraud pods, nodes from the node pools).
/// </summary>
public sealed record KubeKind(string Group, string Version, string Kind, string Plural, bool Namespaced, bool Stored, Type Model, string[] ShortNames,
    string[] Subresources)
{
    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary>The path of its group version, as discovery and OpenAPI v3 name it ("api/v1", "apis/apps/v1").</summary>
    public string GroupVersionPath => Group.Length == 0 ? $"api/{Version}" : $"apis/{Group}/{Version}";

    public string Singular => Kind.ToLowerInvariant();

    public IReadOnlyList<string> Verbs => Stored
        ? ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        : Kind == "Pod" ? ["delete", "get", "list", "watch"] : ["get", "list", "watch"];

    public string ListKind => Kind + "List";
}

public static class KubeKinds
{
    public static readonly KubeKind Namespace = new("", "v1", "Namespace", "namespaces", false, true, typeof(V1Namespace), ["ns"], []);
    public static readonly KubeKind ConfigMap = new("", "v1", "ConfigMap", "configmaps", true, true, typeof(V1ConfigMap), ["cm"], []);
    public static readonly KubeKind Secret = new("", "v1", "Secret", "secrets", true, true, typeof(V1Secret), [], []);
    public static readonly KubeKind Service = new("", "v1", "Service", "services", true, true, typeof(V1Service), ["svc"], []);
    public static readonly KubeKind Pod = new("", "v1", "Pod", "pods", true, false, typeof(V1Pod), ["po"], ["log"]);
    public static readonly KubeKind Node = new("", "v1", "Node", "nodes", false, false, typeof(V1Node), ["no"], []);
    public static readonly KubeKind Event = new("", "v1", "Event", "events", true, false, typeof(Corev1Event), ["ev"], []);
    public static readonly KubeKind Deployment = new("apps", "v1", "Deployment", "deployments", true, true, typeof(V1Deployment), ["deploy"], ["scale", "status"]);
    public static readonly KubeKind ReplicaSet = new("apps", "v1", "ReplicaSet", "replicasets", true, false, typeof(V1ReplicaSet), ["rs"], []);

    public static readonly KubeKind PersistentVolumeClaim = new("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, true,
        typeof(V1PersistentVolumeClaim), ["pvc"], []);

    public static IReadOnlyList<KubeKind> All { get; } = [Namespace, ConfigMap, Secret, Service, PersistentVolumeClaim, Pod, Node, Event, Deployment, ReplicaSet];

    public static IReadOnlyList<string> GroupVersionPaths { get; } = All.Select(k => k.GroupVersionPath).Distinct().ToList();

    public static KubeKind? Find(string group, string version, string plural) =>
        All.FirstOrDefault(k => k.Group == group && k.Version == version && k.Plural == plural);

    public static KubeKind? ByKind(string apiVersion, string kind) => All.FirstOrDefault(k => k.ApiVersion == apiVersion && k.Kind == kind);

    public static V1APIResourceList ResourceList(string group, string version)
    {
        var kinds = All.Where(k => k.Group == group && k.Version == version).ToList();
        var resources = new List<V1APIResource>();
        foreach (var k in kinds)
        {
            resources.Add(new V1APIResource
            {
                Name = k.Plural, SingularName = k.Singular, Namespaced = k.Namespaced, Kind = k.Kind, Verbs = [.. k.Verbs],
                ShortNames = k.ShortNames.Length == 0 ? null : k.ShortNames, Categories = k.Stored && k.Kind != "Namespace" ? ["all"] : null,
            });
            foreach (var sub in k.Subresources)
                resources.Add(sub switch
                {
                    "log" => new V1APIResource { Name = $"{k.Plural}/log", SingularName = "", Namespaced = true, Kind = k.Kind, Verbs = ["get"] },
                    "scale" => new V1APIResource
                    {
                        Name = $"{k.Plural}/scale", SingularName = "", Namespaced = true, Group = "autoscaling", Version = "v1", Kind = "Scale",
                        Verbs = ["get", "patch", "update"],
                    },
                    _ => new V1APIResource { Name = $"{k.Plural}/{sub}", SingularName = "", Namespaced = true, Kind = k.Kind, Verbs = ["get", "patch", "update"] },
                });
        }
        if (kinds.Any(k => k.Kind is "Pod" or "ReplicaSet"))
        {
            // Pods and ReplicaSets are Kraud's to make: listed as such, as in a cluster where a controller owns them.
            foreach (var r in resources.Where(r => r.Kind == "Pod" && r.Name == "pods")) r.Categories = ["all"];
            foreach (var r in resources.Where(r => r.Kind == "ReplicaSet")) r.Categories = ["all"];
        }
        return new V1APIResourceList { ApiVersion = "v1", Kind = "APIResourceList", GroupVersion = group.Length == 0 ? version : $"{group}/{version}", Resources = resources };
    }

    public static V1APIGroupList Groups()
    {
        var groups = All.Where(k => k.Group.Length > 0).GroupBy(k => k.Group).Select(g =>
        {
            var versions = g.Select(k => k.Version).Distinct().Select(v => new V1GroupVersionForDiscovery { GroupVersion = $"{g.Key}/{v}", Version = v }).ToList();
            return new V1APIGroup { Name = g.Key, Versions = versions, PreferredVersion = versions[0] };
        }).ToList();
        return new V1APIGroupList { ApiVersion = "v1", Kind = "APIGroupList", Groups = groups };
    }
}
