using System.Collections.Immutable;
using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.KubernetesApi;

/// <summary>
/// Where a Kubernetes object lives: one event stream per cluster, kind, namespace and name (cluster-scoped kinds have an
/// empty namespace). A deleted object's name can be taken again: the stream goes on with a new uid.
/// </summary>
public sealed record KubeObjectKey(Guid ClusterId, string Kind, string Namespace, string Name)
{
    public Guid StreamId => DeterministicId.From("k8s-object", ClusterId, Kind, Namespace, Name);

    public override string ToString() => Namespace.Length == 0 ? $"{Kind} {Name}" : $"{Kind} {Namespace}/{Name}";
}

/// <summary>
/// A Kubernetes object was created through a cluster's API. <paramref name="Manifest"/> is what the client asked for
/// (metadata, spec, data) as canonical JSON, without what the server owns (uid, resourceVersion, generation, status)
/// and without a Secret's values, which are never in an event (they are sealed in a document of their own).
/// </summary>
public sealed record KubeObjectCreated(
    Guid ObjectId, Guid ClusterId, Guid TenantId, string ApiVersion, string Kind, string Namespace, string Name, Guid Uid, string Manifest, string By,
    DateTimeOffset At);

/// <summary>The object's manifest changed (update or patch). Generation counts changes of its spec, as Kubernetes does.</summary>
public sealed record KubeObjectChanged(Guid ObjectId, Guid ClusterId, string Kind, string Namespace, string Name, string Manifest, long Generation, string By,
    DateTimeOffset At);

/// <summary>
/// A namespace's deletion was asked for. It is Terminating, as in Kubernetes: what it holds can still be deleted (kubectl
/// delete -f deletes the namespace first, then its contents) but nothing new is created in it, and the namespace controller
/// deletes what remains, then the namespace.
/// </summary>
public sealed record KubeNamespaceTerminating(Guid ObjectId, Guid ClusterId, string Name, string By, DateTimeOffset At);

public sealed record KubeObjectDeleted(Guid ObjectId, Guid ClusterId, string Kind, string Namespace, string Name, string By, DateTimeOffset At);

/// <summary>
/// A Deployment's pod template got a ReplicaSet of its own: a Kraud pod (<paramref name="PodId"/>) that runs its replicas.
/// A new template gets a new one; the previous ones are retired once it runs. <paramref name="Template"/> is the pod
/// template it runs (canonical JSON), so that each ReplicaSet and its pods show their own template, not the Deployment's newest.
/// </summary>
public sealed record KubeReplicaSetCreated(Guid ObjectId, Guid ClusterId, string Name, Guid PodId, string TemplateHash, int Revision, int Replicas,
    string Template, DateTimeOffset At);

/// <summary>The Deployment's replica count was applied to its current ReplicaSet's pod.</summary>
public sealed record KubeReplicaSetScaled(Guid ObjectId, Guid ClusterId, Guid PodId, int From, int To, DateTimeOffset At);

/// <summary>An older ReplicaSet's pod was deleted: the newer one runs, or the Deployment was scaled to zero or deleted.</summary>
public sealed record KubeReplicaSetRetired(Guid ObjectId, Guid ClusterId, Guid PodId, string Reason, DateTimeOffset At);

public sealed record KubeReplicaSet(string Name, Guid PodId, string TemplateHash, int Revision, int Replicas, bool Retired, string Template);

public sealed record KubeObject(
    Guid Id, Guid ClusterId, Guid TenantId, string ApiVersion, string Kind, string Namespace, string Name, Guid Uid, string Manifest, long Generation,
    bool Exists, DateTimeOffset CreatedAt, ImmutableList<KubeReplicaSet> ReplicaSets) : IState<KubeObject>
{
    public static KubeObject Initial { get; } = new(Guid.Empty, Guid.Empty, Guid.Empty, "", "", "", "", Guid.Empty, "", 0, false, default, []);

    /// <summary>The highest ReplicaSet revision the object ever used (kept across deletes, so a re-created Deployment never reuses a pod id).</summary>
    public int LastRevision { get; init; }

    /// <summary>When a namespace's deletion was asked for (it is Terminating); null otherwise.</summary>
    public DateTimeOffset? TerminatingSince { get; init; }

    public KubeReplicaSet? CurrentReplicaSet => ReplicaSets.LastOrDefault(r => !r.Retired);

    public IEnumerable<KubeReplicaSet> LiveReplicaSets => ReplicaSets.Where(r => !r.Retired);

    public KubeObject Evolve(object @event) => @event switch
    {
        KubeObjectCreated e => new KubeObject(e.ObjectId, e.ClusterId, e.TenantId, e.ApiVersion, e.Kind, e.Namespace, e.Name, e.Uid, e.Manifest, 1, true,
            e.At, [])
        { LastRevision = LastRevision },
        KubeObjectChanged e => this with { Manifest = e.Manifest, Generation = e.Generation },
        KubeNamespaceTerminating e => this with { TerminatingSince = e.At },
        KubeObjectDeleted => this with { Exists = false, TerminatingSince = null },
        KubeReplicaSetCreated e => this with
        {
            ReplicaSets = ReplicaSets.Add(new KubeReplicaSet(e.Name, e.PodId, e.TemplateHash, e.Revision, e.Replicas, false, e.Template)),
            LastRevision = Math.Max(LastRevision, e.Revision),
        },
        KubeReplicaSetScaled e => this with { ReplicaSets = ReplicaSets.Select(r => r.PodId == e.PodId ? r with { Replicas = e.To } : r).ToImmutableList() },
        KubeReplicaSetRetired e => this with { ReplicaSets = ReplicaSets.Select(r => r.PodId == e.PodId ? r with { Retired = true } : r).ToImmutableList() },
        _ => this,
    };
}

public abstract record KubeObjectCommand(KubeObjectKey Key, Principal By, DateTimeOffset At);

/// <summary>What a Deployment asks to run, as far as deciding needs it: which template (its canonical JSON and hash) and how many replicas.</summary>
public sealed record WorkloadIntent(string TemplateHash, int Replicas, string Template);

/// <summary>
/// Create or replace an object. The caller (the API, which knows the wire types) hands in the canonical manifest, whether
/// its spec changed, and for a Deployment its workload intent; the decider owns existence, conflicts and the history.
/// </summary>
/// <param name="ExpectedUid">Set when the client named the object it means (a replace of what it read): another uid is a conflict.</param>
public sealed record PutKubeObject(
    KubeObjectKey Key, Guid TenantId, string ApiVersion, Guid NewUid, string Manifest, bool SpecChanged, PutMode Mode, WorkloadIntent? Workload, Principal By,
    DateTimeOffset At, Guid? ExpectedUid = null) : KubeObjectCommand(Key, By, At);

public enum PutMode
{
    /// <summary>POST: the object must not exist.</summary>
    Create,

    /// <summary>PUT or PATCH: the object must exist.</summary>
    Replace,
}

/// <param name="Finalize">The namespace controller's delete of a Terminating namespace, once it deleted what the namespace held.</param>
public sealed record DeleteKubeObject(KubeObjectKey Key, Principal By, DateTimeOffset At, bool Finalize = false) : KubeObjectCommand(Key, By, At);

/// <summary>The rollout retires ReplicaSets older than the current one (which runs), or all of them for a deleted or scaled-to-zero Deployment.</summary>
public sealed record RetireReplicaSets(KubeObjectKey Key, IReadOnlyList<Guid> PodIds, string Reason, Principal By, DateTimeOffset At)
    : KubeObjectCommand(Key, By, At);

public static class KubeObjectDecider
{
    public const int MaxManifestBytes = 512 * 1024;

    public static IReadOnlyList<object> Decide(KubeObjectCommand command, KubeObject state) => (command, state) switch
    {
        (PutKubeObject { Mode: PutMode.Create }, { Exists: true }) =>
            throw DomainException.Conflict($"{command.Key} already exists."),
        (PutKubeObject { Mode: PutMode.Replace }, { Exists: false }) => throw DomainException.NotFound(command.Key.Kind, Display(command.Key)),
        (PutKubeObject { ExpectedUid: { } uid }, { Exists: true }) when uid != state.Uid =>
            throw DomainException.Conflict($"{command.Key} was deleted and created again (uid {state.Uid}, not {uid}): read it again."),
        (PutKubeObject c, _) => Put(c, state),
        (DeleteKubeObject c, { Exists: false }) => throw DomainException.NotFound(c.Key.Kind, Display(c.Key)),
        (DeleteKubeObject { Key.Kind: "Namespace", Finalize: false } c, { TerminatingSince: null }) =>
            [new KubeNamespaceTerminating(state.Id, c.Key.ClusterId, c.Key.Name, c.By.Actor, c.At)],
        (DeleteKubeObject { Key.Kind: "Namespace", Finalize: false }, _) => [],
        (DeleteKubeObject c, _) => [.. Retire(state, state.LiveReplicaSets.Select(r => r.PodId), $"{c.Key} was deleted", c.At),
            new KubeObjectDeleted(state.Id, c.Key.ClusterId, c.Key.Kind, c.Key.Namespace, c.Key.Name, c.By.Actor, c.At)],
        (RetireReplicaSets c, _) => Retire(state, c.PodIds, c.Reason, c.At),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.GetType().Name),
    };

    private static string Display(KubeObjectKey key) => key.Namespace.Length == 0 ? key.Name : $"{key.Namespace}/{key.Name}";

    private static IReadOnlyList<object> Put(PutKubeObject c, KubeObject state)
    {
        var key = c.Key;
        KubeNames.RequireObjectName(key.Kind, key.Name);
        if (key.Namespace.Length > 0) Names.RequireDnsLabel(key.Namespace, "metadata.namespace");
        if (c.Manifest.Length > MaxManifestBytes)
            throw DomainException.Validation($"{key} is {c.Manifest.Length} bytes; Kraud keeps objects of up to {MaxManifestBytes} bytes.");
        var id = key.StreamId;
        List<object> events = [];
        var created = !state.Exists;
        if (created)
            events.Add(new KubeObjectCreated(id, key.ClusterId, c.TenantId, c.ApiVersion, key.Kind, key.Namespace, key.Name, c.NewUid, c.Manifest, c.By.Actor,
                c.At));
        else if (c.Manifest != state.Manifest)
            events.Add(new KubeObjectChanged(id, key.ClusterId, key.Kind, key.Namespace, key.Name, c.Manifest,
                c.SpecChanged ? state.Generation + 1 : state.Generation, c.By.Actor, c.At));
        if (c.Workload is { } workload) events.AddRange(Rollout(c, state, workload, created));
        return events;
    }

    /// <summary>
    /// A Deployment's template and replica count against its ReplicaSets: a template no live ReplicaSet runs gets a new
    /// one (the old ones keep running until it does: a surge of 100 %, never fewer running replicas than asked for); a new
    /// count scales the current one; zero retires them all.
    /// </summary>
    private static IEnumerable<object> Rollout(PutKubeObject c, KubeObject state, WorkloadIntent workload, bool created)
    {
        var key = c.Key;
        if (workload.Replicas is < 0 or > Pods.PodDecider.MaxReplicas)
            throw DomainException.Validation($"spec.replicas must be between 0 and {Pods.PodDecider.MaxReplicas}, got {workload.Replicas}.");
        var live = created ? [] : state.LiveReplicaSets.ToList();
        if (workload.Replicas == 0)
        {
            foreach (var e in Retire(state, live.Select(r => r.PodId), $"{key} was scaled to 0", c.At)) yield return e;
            yield break;
        }
        var current = live.LastOrDefault();
        if (current is not null && current.TemplateHash == workload.TemplateHash)
        {
            if (current.Replicas != workload.Replicas)
                yield return new KubeReplicaSetScaled(state.Id, key.ClusterId, current.PodId, current.Replicas, workload.Replicas, c.At);
            yield break;
        }
        // An older ReplicaSet with this very template (a rollback): it becomes current again by a new revision of its own,
        // so the order of ReplicaSets stays the order of revisions.
        var revision = state.LastRevision + 1;
        var name = KubeNames.ReplicaSetName(key.Name, workload.TemplateHash);
        var podId = DeterministicId.From("k8s-replicaset", key.StreamId, created ? c.NewUid : state.Uid, revision);
        yield return new KubeReplicaSetCreated(key.StreamId, key.ClusterId, name, podId, workload.TemplateHash, revision, workload.Replicas, workload.Template, c.At);
    }

    private static IReadOnlyList<object> Retire(KubeObject state, IEnumerable<Guid> podIds, string reason, DateTimeOffset at)
    {
        var wanted = podIds.ToHashSet();
        return state.LiveReplicaSets.Where(r => wanted.Contains(r.PodId))
            .Select(r => (object)new KubeReplicaSetRetired(state.Id, state.ClusterId, r.PodId, reason, at)).ToList();
    }
}
