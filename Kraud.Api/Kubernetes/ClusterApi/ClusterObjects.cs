using System.Diagnostics;
using System.Text.Json.Nodes;
using JasperFx.Events;
using k8s.Models;
using Kraud.Api.Common;
using Kraud.Domain.Kubernetes;
using Kraud.Domain.KubernetesApi;
using Kraud.Domain.Pods;
using Kraud.Projections.Ingresses;
using Kraud.Projections.KubernetesApi;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Npgsql;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>One object as the API serves it, with the resourceVersion it is at (the newest event of the streams it is read from).</summary>
public sealed record KubeItem(KubeKind Kind, string Namespace, string Name, long ResourceVersion, JsonObject Json, Guid StreamId);

/// <summary>
/// A cluster's objects at one moment: the stored ones (Kubernetes objects as event streams) and those read from Kraud's
/// resources (a Deployment's ReplicaSets are its Kraud pods, their microVMs its Kubernetes pods, the node pools' microVMs
/// its nodes). resourceVersions are sequence numbers of Kraud's event log.
/// </summary>
public sealed class ClusterObjects
{
    private readonly KubernetesCluster cluster;
    private readonly IReadOnlyList<KubeObjectView> views;
    private readonly IReadOnlyDictionary<Guid, PodView> pods;
    private readonly IReadOnlyDictionary<Guid, long> seqs;
    private readonly IReadOnlyDictionary<Guid, KubeSecretData> secrets;
    private readonly SecretSeal seal;
    private readonly DateTimeOffset now;

    /// <summary>The managed ingresses of LoadBalancer Services, by ingress id.</summary>
    private IReadOnlyDictionary<Guid, IngressView> loadBalancers = new Dictionary<Guid, IngressView>();

    /// <summary>The Kraud volumes of PersistentVolumeClaims, by volume id.</summary>
    private IReadOnlyDictionary<Guid, VolumeView> claimVolumes = new Dictionary<Guid, VolumeView>();

    private ClusterObjects(KubernetesCluster cluster, IReadOnlyList<KubeObjectView> views, IReadOnlyDictionary<Guid, PodView> pods,
        IReadOnlyDictionary<Guid, long> seqs, IReadOnlyDictionary<Guid, KubeSecretData> secrets, SecretSeal seal, long head, DateTimeOffset now)
    {
        this.cluster = cluster;
        this.views = views;
        this.pods = pods;
        this.seqs = seqs;
        this.secrets = secrets;
        this.seal = seal;
        this.now = now;
        Head = head;
    }

    /// <summary>The log's newest sequence number when this was read: a list's resourceVersion.</summary>
    public long Head { get; }

    public IReadOnlyList<KubeObjectView> Views => views;

    /// <summary>The moment the objects are rendered at (conditions' times, a terminating pod's deletionTimestamp).</summary>
    public DateTimeOffset Now => now;

    /// <summary>The cluster's objects as they are now (what a get or a write reads); <see cref="Head"/> may lie below some of their events.</summary>
    public static async Task<ClusterObjects> LoadAsync(KubernetesCluster cluster, IQuerySession session, KubeLog log, SecretSeal seal,
        DateTimeOffset now, CancellationToken ct)
    {
        var (present, _) = await LoadPresentAsync(cluster, session, log, seal, now, ct);
        return present;
    }

    /// <summary>
    /// The cluster's objects exactly as they were at <see cref="Head"/>: what a list answers, since a watch from its
    /// resourceVersion sends what changed after that version (the Kubernetes contract). The present is read after the head;
    /// if anything it was read from has an event past the head (a commit in between, or one above a number a transaction
    /// still holds) or an object was deleted past it, it is read again after a pause, and after a few tries folded from the log at the head.
    /// </summary>
    public static async Task<ClusterObjects> LoadAtHeadAsync(KubernetesCluster cluster, IQuerySession session, KubeLog log, SecretSeal seal,
        DateTimeOffset now, CancellationToken ct)
    {
        // A transaction in flight commits within milliseconds: waiting a little for it mostly answers the present.
        foreach (var pause in (int[])[20, 50, 100, 200, -1])
        {
            var (present, atHead) = await LoadPresentAsync(cluster, session, log, seal, now, ct);
            if (atHead) return present;
            if (pause < 0) return await LoadAtAsync(cluster, session, seal, present.Head, now, ct);
            await Task.Delay(pause, ct);
        }
        throw new UnreachableException();
    }

    /// <summary>The present objects, and whether they are the cluster as of the head read before them (no event of theirs past it).</summary>
    private static async Task<(ClusterObjects Objects, bool AtHead)> LoadPresentAsync(KubernetesCluster cluster, IQuerySession session, KubeLog log,
        SecretSeal seal, DateTimeOffset now, CancellationToken ct)
    {
        var head = await log.HeadAsync(ct);
        var stored = await session.Query<KubeObjectView>().Where(v => v.ClusterId == cluster.Id).ToListAsync(ct);
        var podIds = PodIdsOf(cluster, stored);
        var podViews = podIds.Length == 0 ? [] : await session.LoadManyAsync<PodView>(ct, podIds);
        // Read after the objects: each stream's number is at least the event its object was read at.
        var (sequences, deletedPastHead) = await log.SequencesAsync(stored.Select(v => v.Id).Concat(podIds).Concat(IngressIdsOf(stored)).Concat(ClaimVolumeIdsOf(stored)).ToArray(),
            head, ct);
        var objects = await AssembleAsync(cluster, session, seal, stored, podViews, sequences, head, now, ct);
        return (objects, !deletedPastHead && sequences.Values.All(s => s <= head));
    }

    /// <summary>
    /// The cluster's objects as they were at a resourceVersion, folded from the log: what a watch from that version
    /// compares the present with (an object there and gone now was DELETED after it, even if it went before the watch's
    /// first look). Secrets' values, load balancers and claims' volumes are read as they are now: they only colour content.
    /// </summary>
    public static async Task<ClusterObjects> LoadAtAsync(KubernetesCluster cluster, IQuerySession session, SecretSeal seal, long at,
        DateTimeOffset now, CancellationToken ct)
    {
        var present = await session.Query<KubeObjectView>().Where(v => v.ClusterId == cluster.Id).Select(v => v.Id).ToListAsync(ct);
        var deletedSince = (await session.Events.QueryAllRawEvents().Where(e => e.Sequence > at && e.EventTypeName == "kube_object_deleted").ToListAsync(ct))
            .Select(e => (KubeObjectDeleted)e.Data).Where(d => d.ClusterId == cluster.Id).Select(d => d.ObjectId);
        var sequences = new Dictionary<Guid, long>();
        var objects = new KubeObjectViewProjection();
        var stored = await FoldAsync<KubeObjectView>(session, present.Concat(deletedSince).Distinct().ToArray(), at, sequences, objects.Evolve, ct);
        var podProjection = new PodViewProjection();
        var podViews = await FoldAsync<PodView>(session, PodIdsOf(cluster, stored), at, sequences, podProjection.Evolve, ct);
        return await AssembleAsync(cluster, session, seal, stored, podViews, sequences, at, now, ct);
    }

    /// <summary>Each stream's view as of a sequence number, from its events up to it (the projections' own Evolve).</summary>
    private static async Task<IReadOnlyList<TView>> FoldAsync<TView>(IQuerySession session, Guid[] streams, long at, Dictionary<Guid, long> sequences,
        Func<TView?, Guid, IEvent, TView?> evolve, CancellationToken ct) where TView : class
    {
        if (streams.Length == 0) return [];
        var events = await session.Events.QueryAllRawEvents().Where(e => e.StreamId.IsOneOf(streams) && e.Sequence <= at).OrderBy(e => e.Sequence).ToListAsync(ct);
        var folded = new Dictionary<Guid, TView?>();
        foreach (var e in events)
        {
            folded[e.StreamId] = evolve(folded.GetValueOrDefault(e.StreamId), e.StreamId, e);
            sequences[e.StreamId] = e.Sequence;
        }
        return folded.Values.OfType<TView>().ToList();
    }

    private static Guid[] PodIdsOf(KubernetesCluster cluster, IReadOnlyList<KubeObjectView> stored) =>
        stored.SelectMany(v => v.Object.ReplicaSets.Select(r => r.PodId)).Concat(cluster.NodePools.Select(p => p.PodId)).Distinct().ToArray();

    private static Guid[] IngressIdsOf(IReadOnlyList<KubeObjectView> stored) =>
        stored.Where(v => v.Kind == KubeKinds.Service.Kind).Select(v => KubeNames.LoadBalancerIngressId(v.Id, v.Object.Uid)).ToArray();

    private static Guid[] ClaimVolumeIdsOf(IReadOnlyList<KubeObjectView> stored) =>
        stored.Where(v => v.Kind == KubeKinds.PersistentVolumeClaim.Kind).Select(v => KubeNames.ClaimVolumeId(v.Id, v.Object.Uid)).ToArray();

    private static async Task<ClusterObjects> AssembleAsync(KubernetesCluster cluster, IQuerySession session, SecretSeal seal, IReadOnlyList<KubeObjectView> stored,
        IReadOnlyList<PodView> podViews, IReadOnlyDictionary<Guid, long> sequences, long head, DateTimeOffset now, CancellationToken ct)
    {
        var secretIds = stored.Where(v => v.Kind == KubeKinds.Secret.Kind).Select(v => v.Id).ToArray();
        var secretData = secretIds.Length == 0 ? [] : await session.LoadManyAsync<KubeSecretData>(ct, secretIds);
        var ingressIds = IngressIdsOf(stored);
        var ingressViews = ingressIds.Length == 0 ? [] : await session.LoadManyAsync<IngressView>(ct, ingressIds);
        var claimVolumeIds = ClaimVolumeIdsOf(stored);
        var volumeViews = claimVolumeIds.Length == 0 ? [] : await session.LoadManyAsync<VolumeView>(ct, claimVolumeIds);
        return new ClusterObjects(cluster, stored, podViews.Where(p => p.TenantId == cluster.TenantId).ToDictionary(p => p.Id), sequences,
            secretData.ToDictionary(s => s.Id), seal, head, now)
        {
            loadBalancers = ingressViews.Where(i => i is { Deleted: false, Ingress.Exists: true } && i.TenantId == cluster.TenantId).ToDictionary(i => i.Id),
            claimVolumes = volumeViews.Where(v => v.TenantId == cluster.TenantId).ToDictionary(v => v.Id),
        };
    }

    private long Seq(Guid stream) => seqs.GetValueOrDefault(stream);

    public bool NamespaceTerminating(string name) => views.Any(v => v.Kind == "Namespace" && v.Name == name && v.Terminating);

    public bool NamespaceExists(string name) => BuiltInNamespaces.Contains(name) || views.Any(v => v.Kind == "Namespace" && v.Name == name);

    /// <summary>Namespaces every cluster has (not stored: they cannot be deleted).</summary>
    public static readonly IReadOnlyList<string> BuiltInNamespaces = ["default", "kube-system", "kube-public", "kube-node-lease"];

    public IReadOnlyList<KubeItem> List(KubeKind kind, string? ns)
    {
        var items = kind.Kind switch
        {
            "Pod" => Deployments(ns).SelectMany(PodsOf),
            "ReplicaSet" => Deployments(ns).SelectMany(ReplicaSetsOf),
            "Node" => Nodes(),
            "Event" => Deployments(ns).SelectMany(EventsOf),
            "Namespace" => BuiltIns().Concat(Stored(kind, null)),
            _ => Stored(kind, ns),
        };
        return items.OrderBy(i => i.Namespace, StringComparer.Ordinal).ThenBy(i => i.Name, StringComparer.Ordinal).ToList();
    }

    public KubeItem? Get(KubeKind kind, string? ns, string name) => List(kind, ns).FirstOrDefault(i => i.Name == name);

    public KubeObjectView? View(KubeKind kind, string? ns, string name) =>
        views.FirstOrDefault(v => v.Kind == kind.Kind && v.Namespace == (ns ?? "") && v.Name == name);

    private IEnumerable<KubeObjectView> Deployments(string? ns) =>
        views.Where(v => v.Kind == KubeKinds.Deployment.Kind && (ns is null || v.Namespace == ns));

    private IEnumerable<KubeItem> BuiltIns() => BuiltInNamespaces.Select(name => new KubeItem(KubeKinds.Namespace, "", name, 1, KubeJson.ToNode(new V1Namespace
    {
        ApiVersion = "v1", Kind = "Namespace",
        Metadata = new V1ObjectMeta
        {
            Name = name, Uid = Domain.Common.DeterministicId.From("k8s-namespace", cluster.Id, name).ToString(), ResourceVersion = "1",
            CreationTimestamp = cluster.CreatedAt.UtcDateTime, Labels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = name },
        },
        Spec = new V1NamespaceSpec { Finalizers = ["kubernetes"] },
        Status = new V1NamespaceStatus { Phase = "Active" },
    }), Guid.Empty));

    private IEnumerable<KubeItem> Stored(KubeKind kind, string? ns) =>
        views.Where(v => v.Kind == kind.Kind && (ns is null || v.Namespace == ns)).Select(Render);

    /// <summary>A stored object as served: its manifest with what the server owns (uid, resourceVersion, generation, status).</summary>
    public const string ResourceIdAnnotation = "kraud.cloud/resource-id";

    public KubeItem Render(KubeObjectView view)
    {
        var o = view.Object;
        var kind = KubeKinds.All.Single(k => k.Kind == o.Kind);
        var json = JsonNode.Parse(o.Manifest)!.AsObject();
        json["apiVersion"] = kind.ApiVersion;
        json["kind"] = kind.Kind;
        // A Deployment changes with its ReplicaSets' pods, a LoadBalancer Service with its ingress.
        var rv = new[] { Seq(view.Id), Seq(KubeNames.LoadBalancerIngressId(view.Id, o.Uid)), Seq(KubeNames.ClaimVolumeId(view.Id, o.Uid)) }
            .Concat(o.ReplicaSets.Select(r => Seq(r.PodId))).Max();
        var meta = KubeJson.Metadata(json);
        meta["uid"] = o.Uid.ToString();
        meta["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
        meta["creationTimestamp"] = KubeJson.Time(o.CreatedAt);
        if (kind.Namespaced) meta["namespace"] = o.Namespace;
        // Kraud's id of the object's event stream: what `timeline(resourceId:)` and the audit log know it by.
        var annotations = meta["annotations"] as JsonObject ?? (JsonObject)(meta["annotations"] = new JsonObject());
        annotations[ResourceIdAnnotation] = view.Id.ToString();
        if (kind == KubeKinds.Deployment) meta["generation"] = o.Generation;
        switch (kind.Kind)
        {
            case "Namespace":
                json["spec"] = new JsonObject { ["finalizers"] = new JsonArray("kubernetes") };
                json["status"] = new JsonObject { ["phase"] = o.TerminatingSince is null ? "Active" : "Terminating" };
                if (o.TerminatingSince is { } since) meta["deletionTimestamp"] = KubeJson.Time(since);
                break;
            case "Secret":
                var values = new Dictionary<string, string>(secrets.TryGetValue(view.Id, out var data) ? seal.Open(data.Sealed, view.Id) : [], StringComparer.Ordinal);
                if (values.Remove(Admission.SealedLastApplied, out var lastApplied))
                {
                    annotations[Admission.LastApplied] = lastApplied;
                }
                if (values.Count > 0) json["data"] = new JsonObject(values.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value)));
                else json.Remove("data");
                break;
            case "Deployment":
                json["status"] = KubeJson.ToNode(DeploymentStatus(view));
                break;
            case "Service":
                json["status"] = ServiceStatus(view);
                break;
            case "PersistentVolumeClaim":
                ClaimStatus(view, json);
                break;
        }
        return new KubeItem(kind, o.Namespace, o.Name, rv, json, view.Id);
    }

    /// <summary>A claim is Bound once its Kraud volume is HEALTHY (its replicas placed and formatted); its volume is named by id.</summary>
    private void ClaimStatus(KubeObjectView view, JsonObject json)
    {
        var volumeId = KubeNames.ClaimVolumeId(view.Id, view.Object.Uid);
        var status = new JsonObject { ["phase"] = "Pending" };
        if (claimVolumes.TryGetValue(volumeId, out var volume))
        {
            if (json["spec"] is JsonObject spec) spec["volumeName"] = volume.Name;
            if (volume.State is Domain.Volumes.VolumeState.Healthy or Domain.Volumes.VolumeState.Degraded)
            {
                status["phase"] = "Bound";
                status["accessModes"] = json["spec"]?["accessModes"]?.DeepClone();
                status["capacity"] = new JsonObject { ["storage"] = $"{volume.Volume.SizeGiB}Gi" };
            }
        }
        json["status"] = status;
    }

    /// <summary>A LoadBalancer Service shows its managed ingress's host once the ingress exists (kubectl's EXTERNAL-IP).</summary>
    private JsonObject ServiceStatus(KubeObjectView view)
    {
        var balancer = new JsonObject();
        if (loadBalancers.TryGetValue(KubeNames.LoadBalancerIngressId(view.Id, view.Object.Uid), out var ingress) && ingress.Ingress.Routes is [var route, ..])
            balancer["ingress"] = new JsonArray(new JsonObject { ["hostname"] = route.Host });
        return new JsonObject { ["loadBalancer"] = balancer };
    }

    private sealed record ReplicaSetPods(KubeReplicaSet ReplicaSet, Pod? Pod, long Seq)
    {
        public IReadOnlyList<PodInstance> Live => Pod is null || ReplicaSet.Retired ? [] : Pod.Live.ToList();
        public int Running => Live.Count(i => i.Phase == VmPhase.Running);
    }

    private IReadOnlyList<ReplicaSetPods> ReplicaSetsOfView(KubeObjectView view) =>
        view.Object.ReplicaSets.Select(r => new ReplicaSetPods(r, pods.GetValueOrDefault(r.PodId)?.Pod, Seq(r.PodId))).ToList();

    private V1DeploymentStatus DeploymentStatus(KubeObjectView view)
    {
        var sets = ReplicaSetsOfView(view);
        var current = sets.LastOrDefault(s => !s.ReplicaSet.Retired);
        var desired = KubeJson.ToModel<V1Deployment>(JsonNode.Parse(view.Object.Manifest)!).Spec?.Replicas ?? 1;
        var updated = current?.Live.Count ?? 0;
        var total = sets.Sum(s => s.Live.Count);
        var available = sets.Sum(s => s.Running);
        var updatedAvailable = current?.Running ?? 0;
        var complete = updated == desired && total == desired && updatedAvailable == desired;
        var at = now.UtcDateTime;
        return new V1DeploymentStatus
        {
            ObservedGeneration = view.Object.Generation, Replicas = total, UpdatedReplicas = updated, ReadyReplicas = available, AvailableReplicas = available,
            UnavailableReplicas = Math.Max(0, desired - available),
            Conditions =
            [
                new V1DeploymentCondition
                {
                    Type = "Available", Status = available >= desired ? "True" : "False",
                    Reason = available >= desired ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                    Message = available >= desired ? "Deployment has minimum availability." : "Deployment does not have minimum availability.",
                    LastUpdateTime = at, LastTransitionTime = at,
                },
                new V1DeploymentCondition
                {
                    Type = "Progressing", Status = "True", Reason = complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated",
                    Message = current is null ? "Deployment is scaled to 0." : complete
                        ? $"ReplicaSet \"{current.ReplicaSet.Name}\" has successfully progressed."
                        : $"ReplicaSet \"{current.ReplicaSet.Name}\" is progressing.",
                    LastUpdateTime = at, LastTransitionTime = at,
                },
            ],
        };
    }

    /// <summary>The pod template a ReplicaSet runs: its own, as it was when the ReplicaSet was made.</summary>
    private static V1PodTemplateSpec TemplateOf(KubeReplicaSet rs) => KubeJson.ToModel<V1PodTemplateSpec>(JsonNode.Parse(rs.Template)!);

    private IEnumerable<KubeItem> ReplicaSetsOf(KubeObjectView deployment)
    {
        foreach (var set in ReplicaSetsOfView(deployment))
        {
            var rs = set.ReplicaSet;
            var template = TemplateOf(rs);
            var labels = new Dictionary<string, string>(template.Metadata?.Labels ?? new Dictionary<string, string>()) { ["pod-template-hash"] = rs.TemplateHash };
            var replicas = rs.Retired ? 0 : rs.Replicas;
            var model = new V1ReplicaSet
            {
                ApiVersion = "apps/v1", Kind = "ReplicaSet",
                Metadata = new V1ObjectMeta
                {
                    Name = rs.Name, NamespaceProperty = deployment.Namespace, Uid = rs.PodId.ToString(), Labels = labels,
                    ResourceVersion = Math.Max(set.Seq, Seq(deployment.Id)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    CreationTimestamp = (set.Pod?.CreatedAt ?? deployment.Object.CreatedAt).UtcDateTime, Generation = 1,
                    Annotations = new Dictionary<string, string>
                    {
                        ["deployment.kubernetes.io/revision"] = rs.Revision.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["deployment.kubernetes.io/desired-replicas"] = replicas.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["kraud.cloud/pod-id"] = rs.PodId.ToString(),
                    },
                    OwnerReferences = [Owner("apps/v1", "Deployment", deployment.Name, deployment.Object.Uid)],
                },
                Spec = new V1ReplicaSetSpec
                {
                    Replicas = replicas,
                    Selector = new V1LabelSelector { MatchLabels = labels },
                    Template = new V1PodTemplateSpec { Metadata = new V1ObjectMeta { Labels = labels, Annotations = template.Metadata?.Annotations }, Spec = template.Spec },
                },
                Status = new V1ReplicaSetStatus
                {
                    Replicas = set.Live.Count, ReadyReplicas = set.Running, AvailableReplicas = set.Running, FullyLabeledReplicas = set.Live.Count,
                    ObservedGeneration = 1,
                },
            };
            yield return new KubeItem(KubeKinds.ReplicaSet, deployment.Namespace, rs.Name, long.Parse(model.Metadata.ResourceVersion, System.Globalization.CultureInfo.InvariantCulture),
                KubeJson.ToNode(model), rs.PodId);
        }
    }

    private static V1OwnerReference Owner(string apiVersion, string kind, string name, Guid uid) =>
        new() { ApiVersion = apiVersion, Kind = kind, Name = name, Uid = uid.ToString(), Controller = true, BlockOwnerDeletion = true };

    /// <summary>A Kubernetes pod per microVM of the ReplicaSet's Kraud pod, and one Pending per replica still waiting for a host.</summary>
    private IEnumerable<KubeItem> PodsOf(KubeObjectView deployment)
    {
        foreach (var set in ReplicaSetsOfView(deployment))
        {
            if (set.Pod is not { } pod) continue;
            var rs = set.ReplicaSet;
            var template = TemplateOf(rs);
            var labels = new Dictionary<string, string>(template.Metadata?.Labels ?? new Dictionary<string, string>()) { ["pod-template-hash"] = rs.TemplateHash };
            var instances = pod.Instances.Select(i => (i.Replica, i.VmId, Instance: (PodInstance?)i)).ToList();
            if (!rs.Retired && !pod.Deleting)
                instances.AddRange(pod.Unplaced.Select(r => (r, Pod.VmIdFor(pod.Id, r, pod.NextGeneration(r)), (PodInstance?)null)));
            foreach (var (replica, vmId, instance) in instances)
            {
                var terminating = rs.Retired || pod.Deleting || instance?.Phase == VmPhase.Stopping || replica >= pod.Replicas;
                var running = instance?.Phase == VmPhase.Running;
                var phase = instance?.Phase switch { VmPhase.Running => "Running", VmPhase.Failed => "Failed", _ => "Pending" };
                var containers = template.Spec.Containers ?? [];
                var started = instance?.StartedAt?.UtcDateTime;
                var model = new V1Pod
                {
                    ApiVersion = "v1", Kind = "Pod",
                    Metadata = new V1ObjectMeta
                    {
                        Name = KubeNames.PodName(rs.Name, vmId), NamespaceProperty = deployment.Namespace, Uid = vmId.ToString(), Labels = labels,
                        ResourceVersion = set.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        CreationTimestamp = pod.CreatedAt.UtcDateTime,
                        DeletionTimestamp = terminating ? now.UtcDateTime : null,
                        OwnerReferences = [Owner("apps/v1", "ReplicaSet", rs.Name, rs.PodId)],
                        Annotations = new Dictionary<string, string> { ["kraud.cloud/microvm"] = vmId.ToString(), ["kraud.cloud/replica"] = replica.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                    },
                    Spec = WithNode(template.Spec, instance?.HostName),
                    Status = new V1PodStatus
                    {
                        Phase = phase, PodIP = instance?.Ip4, HostIP = null, StartTime = started, QosClass = "Guaranteed",
                        PodIPs = instance?.Ip4 is { } ip4 ? [new V1PodIP { Ip = ip4 }, .. instance.Ip6 is { } ip6 ? new[] { new V1PodIP { Ip = ip6 } } : []] : null,
                        Reason = instance?.Phase == VmPhase.Failed ? "Error" : null, Message = instance?.Reason,
                        Conditions =
                        [
                            new V1PodCondition { Type = "PodScheduled", Status = instance is null ? "False" : "True", Reason = instance is null ? (pod.UnschedulableReason is null ? null : "Unschedulable") : null, Message = instance is null ? pod.UnschedulableReason : null },
                            new V1PodCondition { Type = "Initialized", Status = "True" },
                            new V1PodCondition { Type = "ContainersReady", Status = running ? "True" : "False" },
                            new V1PodCondition { Type = "Ready", Status = running && !terminating ? "True" : "False" },
                        ],
                        ContainerStatuses = containers.Select(c => new V1ContainerStatus
                        {
                            Name = c.Name, Image = c.Image, ImageID = "", Ready = running, Started = running, RestartCount = 0,
                            ContainerID = instance is null ? null : $"kraud://{vmId}",
                            State = running
                                ? new V1ContainerState { Running = new V1ContainerStateRunning { StartedAt = started } }
                                : instance?.Phase == VmPhase.Failed
                                    ? new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 1, Reason = "Error", Message = instance.Reason } }
                                    : new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = instance is null ? "Pending" : "ContainerCreating" } },
                        }).ToList(),
                    },
                };
                yield return new KubeItem(KubeKinds.Pod, deployment.Namespace, model.Metadata.Name, set.Seq, KubeJson.ToNode(model), rs.PodId);
            }
        }
    }

    private static V1PodSpec WithNode(V1PodSpec spec, string? node)
    {
        var copy = KubeJson.ToModel<V1PodSpec>(KubeJson.ToNode(spec));
        copy.NodeName = node;
        copy.RestartPolicy ??= "Always";
        return copy;
    }

    private IEnumerable<KubeItem> Nodes()
    {
        foreach (var pool in cluster.NodePools)
        {
            if (!pods.TryGetValue(pool.PodId, out var view)) continue;
            foreach (var instance in view.Pod.Live)
            {
                var name = $"{cluster.Name}-{pool.Name}-{instance.Replica}";
                var ready = instance.Phase == VmPhase.Running;
                var capacity = new Dictionary<string, ResourceQuantity>
                {
                    ["cpu"] = new(pool.Cpu.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                    ["memory"] = new($"{pool.MemoryMiB}Mi"), ["pods"] = new("110"),
                };
                var model = new V1Node
                {
                    ApiVersion = "v1", Kind = "Node",
                    Metadata = new V1ObjectMeta
                    {
                        Name = name, Uid = instance.VmId.ToString(), CreationTimestamp = (instance.StartedAt ?? view.CreatedAt).UtcDateTime,
                        ResourceVersion = Seq(pool.PodId).ToString(System.Globalization.CultureInfo.InvariantCulture),
                        Labels = new Dictionary<string, string>
                        {
                            ["kubernetes.io/hostname"] = name, ["kubernetes.io/os"] = "linux", ["kubernetes.io/arch"] = "amd64",
                            ["topology.kubernetes.io/zone"] = cluster.ControlPlaneZone, ["kraud.cloud/node-pool"] = pool.Name, ["kraud.cloud/host"] = instance.HostName,
                        },
                    },
                    Spec = new V1NodeSpec { ProviderID = $"kraud://{instance.VmId}" },
                    Status = new V1NodeStatus
                    {
                        Capacity = capacity, Allocatable = capacity,
                        Addresses = [new V1NodeAddress { Type = "InternalIP", Address = instance.Ip4 ?? "" }, new V1NodeAddress { Type = "Hostname", Address = name }],
                        Conditions = [new V1NodeCondition { Type = "Ready", Status = ready ? "True" : "False", Reason = ready ? "KubeletReady" : "MicroVmNotRunning", LastHeartbeatTime = now.UtcDateTime, LastTransitionTime = (instance.StartedAt ?? view.CreatedAt).UtcDateTime }],
                        NodeInfo = new V1NodeSystemInfo
                        {
                            KubeletVersion = $"v{cluster.Version}.0", KubeProxyVersion = $"v{cluster.Version}.0", OperatingSystem = "linux", Architecture = "amd64",
                            OsImage = "Kraud microVM", KernelVersion = "", ContainerRuntimeVersion = "kraud://microvm", MachineID = instance.VmId.ToString("N"),
                            SystemUUID = instance.VmId.ToString(), BootID = instance.VmId.ToString(),
                        },
                    },
                };
                yield return new KubeItem(KubeKinds.Node, "", name, Seq(pool.PodId), KubeJson.ToNode(model), pool.PodId);
            }
        }
    }

    /// <summary>What kubectl describe shows under Events: read from the state of the Deployment's ReplicaSets and microVMs.</summary>
    private IEnumerable<KubeItem> EventsOf(KubeObjectView deployment)
    {
        var list = new List<Corev1Event>();
        var sets = ReplicaSetsOfView(deployment);
        foreach (var set in sets)
        {
            var rs = set.ReplicaSet;
            list.Add(Event(deployment.Namespace, "Deployment", deployment.Name, deployment.Object.Uid.ToString(), "ScalingReplicaSet",
                rs.Retired ? $"Scaled down replica set {rs.Name} to 0" : $"Scaled up replica set {rs.Name} to {rs.Replicas}", set.Pod?.CreatedAt ?? deployment.Object.CreatedAt,
                "deployment-controller", $"{deployment.Name}.{rs.Revision}"));
            if (set.Pod is not { } pod) continue;
            foreach (var i in pod.Instances)
            {
                var podName = KubeNames.PodName(rs.Name, i.VmId);
                list.Add(Event(deployment.Namespace, "Pod", podName, i.VmId.ToString(), "Scheduled",
                    $"Successfully assigned {deployment.Namespace}/{podName} to {i.HostName}", pod.CreatedAt, "kraud-scheduler", $"{podName}.scheduled"));
                if (i.StartedAt is { } started)
                    list.Add(Event(deployment.Namespace, "Pod", podName, i.VmId.ToString(), "Started",
                        $"Started microVM {i.VmId} on {i.HostName} in {i.BootMs:0} ms", started, "kraud-host-runtime", $"{podName}.started"));
                if (i.Phase == VmPhase.Failed)
                    list.Add(Event(deployment.Namespace, "Pod", podName, i.VmId.ToString(), "Failed", i.Reason ?? "microVM failed", i.FailedAt ?? now,
                        "kraud-host-runtime", $"{podName}.failed", "Warning"));
            }
        }
        var rv = Math.Max(Seq(deployment.Id), sets.Select(s => s.Seq).DefaultIfEmpty().Max());
        foreach (var e in list)
        {
            e.Metadata.ResourceVersion = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
            yield return new KubeItem(KubeKinds.Event, deployment.Namespace, e.Metadata.Name, rv, KubeJson.ToNode(e), deployment.Id);
        }
    }

    private static Corev1Event Event(string ns, string kind, string name, string uid, string reason, string message, DateTimeOffset at, string component,
        string id, string type = "Normal") => new()
        {
            ApiVersion = "v1", Kind = "Event",
            Metadata = new V1ObjectMeta { Name = $"{id}", NamespaceProperty = ns, Uid = Domain.Common.DeterministicId.From("k8s-event", ns, id).ToString(), CreationTimestamp = at.UtcDateTime },
            InvolvedObject = new V1ObjectReference { Kind = kind, Name = name, NamespaceProperty = ns, Uid = uid, ApiVersion = kind == "Pod" ? "v1" : "apps/v1" },
            Reason = reason, Message = message, Type = type, Count = 1, FirstTimestamp = at.UtcDateTime, LastTimestamp = at.UtcDateTime,
            Source = new V1EventSource { Component = component }, ReportingComponent = component, ReportingInstance = component,
        };
}
