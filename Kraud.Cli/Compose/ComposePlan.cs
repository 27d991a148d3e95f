using System.Text.Json;
using Kraud.Cli.Api;
using Spectre.Console;

namespace Kraud.Cli.Compose;

public enum ChangeKind { Create, Update, Replace, Delete }

/// <summary>One step of a plan: what happens to which resource, and why (what differs).</summary>
public sealed record Change(ChangeKind Kind, string Resource, string Name, string Detail)
{
    public DesiredPod? Pod { get; init; }
    public Pod? Existing { get; init; }
    public DesiredVolume? Volume { get; init; }
    public Volume? ExistingVolume { get; init; }
    public DesiredIngress? Ingress { get; init; }
    public Ingress? ExistingIngress { get; init; }
}

/// <summary>
/// What `kraud up` will do, worked out like `terraform plan` from the compose file and what Kraud runs now: pods of the
/// project's namespace, the project's volumes and ingresses. A pod's image, command, environment, size or mounts cannot
/// change in place, so such a change replaces it (and the ingress routing to it); a replica count is scaled in place.
/// Volumes are never deleted by `up` (data), and cannot be resized.
/// </summary>
public sealed class ComposePlan
{
    public string Project { get; }
    public IReadOnlyList<Change> Changes { get; }

    private ComposePlan(string project, List<Change> changes)
    {
        Project = project;
        Changes = changes;
    }

    public bool Empty => Changes.Count == 0;

    public static ComposePlan ForUp(ComposeProject project, IReadOnlyList<Pod> pods, IReadOnlyList<Volume> volumes, IReadOnlyList<Ingress> ingresses)
    {
        var changes = new List<Change>();
        var refusals = new List<string>();
        var liveVolumes = volumes.Where(v => v.State != "DELETED").ToDictionary(v => v.Name);
        foreach (var v in project.Volumes)
        {
            if (!liveVolumes.TryGetValue(v.Name, out var existing))
                changes.Add(new Change(ChangeKind.Create, "volume", v.Name, $"{v.Class}, {v.SizeGiB} GiB{(v.Zone is null ? "" : $", zone {v.Zone}")}") { Volume = v });
            else if (existing.Class != v.Class || existing.SizeGiB != v.SizeGiB)
                refusals.Add($"volume {v.Name} is {existing.Class} {existing.SizeGiB} GiB; the file asks for {v.Class} {v.SizeGiB} GiB: Kraud cannot resize a volume or change its class");
        }
        if (refusals.Count > 0) throw new Infrastructure.KraudApiException("PRECONDITION", string.Join("; ", refusals));

        var live = pods.Where(p => p.State != "STOPPED").ToDictionary(p => p.Name);
        var replaced = new HashSet<string>();
        foreach (var want in project.Pods)
        {
            if (!live.TryGetValue(want.Name, out var have))
            {
                changes.Add(new Change(ChangeKind.Create, "pod", want.Name, Describe(want)) { Pod = want });
                replaced.Add(want.Name);
                continue;
            }
            var differences = Differences(want, have, project, liveVolumes);
            if (differences.Count > 0)
            {
                changes.Add(new Change(ChangeKind.Replace, "pod", want.Name, string.Join(", ", differences)) { Pod = want, Existing = have });
                replaced.Add(want.Name);
            }
            else if (have.Replicas != want.Replicas)
                changes.Add(new Change(ChangeKind.Update, "pod", want.Name, $"replicas {have.Replicas} → {want.Replicas}") { Pod = want, Existing = have });
        }
        foreach (var stale in live.Values.Where(p => project.Pods.All(w => w.Name != p.Name)))
            changes.Add(new Change(ChangeKind.Delete, "pod", stale.Name, "no longer in the file") { Existing = stale });

        var ours = Owned(project.Name, pods, ingresses);
        foreach (var want in project.Ingresses)
        {
            var have = ours.FirstOrDefault(i => i.Name == want.Name);
            var detail = $"{want.Host}{want.Path} → {want.Service}:{want.Port}";
            if (have is null) changes.Add(new Change(ChangeKind.Create, "ingress", want.Name, detail) { Ingress = want });
            else if (replaced.Contains(want.Service) || have.Routes is not [var r] || r.Host != want.Host || r.Path != want.Path || r.Port != want.Port
                     || live.GetValueOrDefault(want.Service)?.Id != r.PodId)
                changes.Add(new Change(ChangeKind.Replace, "ingress", want.Name, replaced.Contains(want.Service) ? $"{detail} (its pod is new)" : detail)
                { Ingress = want, ExistingIngress = have });
        }
        foreach (var stale in ours.Where(i => project.Ingresses.All(w => w.Name != i.Name)))
            changes.Add(new Change(ChangeKind.Delete, "ingress", stale.Name, "no longer in the file") { ExistingIngress = stale });
        return new ComposePlan(project.Name, changes);
    }

    /// <summary>`kraud down`: every pod of the namespace and the ingresses routing to them; the file's volumes only when asked.</summary>
    public static ComposePlan ForDown(ComposeProject project, IReadOnlyList<Pod> pods, IReadOnlyList<Volume> volumes, IReadOnlyList<Ingress> ingresses,
        bool withVolumes)
    {
        var changes = new List<Change>();
        changes.AddRange(Owned(project.Name, pods, ingresses).Select(i => new Change(ChangeKind.Delete, "ingress", i.Name, "") { ExistingIngress = i }));
        changes.AddRange(pods.Where(p => p.State != "STOPPED").Select(p => new Change(ChangeKind.Delete, "pod", p.Name, "") { Existing = p }));
        if (withVolumes)
        {
            var names = project.Volumes.Select(v => v.Name).ToHashSet();
            changes.AddRange(volumes.Where(v => names.Contains(v.Name) && v.State != "DELETED")
                .Select(v => new Change(ChangeKind.Delete, "volume", v.Name, "its data is crypto-erased") { ExistingVolume = v }));
        }
        return new ComposePlan(project.Name, changes);
    }

    /// <summary>The project's ingresses: named after it, routing only to pods of its namespace.</summary>
    private static List<Ingress> Owned(string project, IReadOnlyList<Pod> pods, IReadOnlyList<Ingress> ingresses)
    {
        var podIds = pods.Select(p => p.Id).ToHashSet();
        return ingresses.Where(i => i.Name.StartsWith(project + "-", StringComparison.Ordinal) && i.Routes.Count > 0 && i.Routes.All(r => podIds.Contains(r.PodId)))
            .ToList();
    }

    private static List<string> Differences(DesiredPod want, Pod have, ComposeProject project, IReadOnlyDictionary<string, Volume> volumes)
    {
        var d = new List<string>();
        if (have.Image != want.Image) d.Add($"image {have.Image} → {want.Image}");
        if (!(have.Command ?? []).SequenceEqual(want.Command)) d.Add("command changed");
        var env = have.Env is { ValueKind: JsonValueKind.Object } e
            ? e.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString())
            : new Dictionary<string, string>();
        if (env.Count != want.Env.Count || env.Any(kv => !want.Env.TryGetValue(kv.Key, out var v) || v != kv.Value)) d.Add("environment changed");
        if (have.Cpu != want.Cpu) d.Add($"cpu {have.Cpu} → {want.Cpu}");
        if (have.MemoryMiB != want.MemoryMiB) d.Add($"memory {have.MemoryMiB} → {want.MemoryMiB} MiB");
        var wantMounts = want.Mounts.Select(m => (volumes.TryGetValue(project.Volumes.Single(v => v.Key == m.VolumeKey).Name, out var v) ? v.Id : "", m.MountPath, m.ReadOnly))
            .OrderBy(m => m.MountPath).ToList();
        var haveMounts = have.Volumes.Select(m => (m.VolumeId, m.MountPath, m.ReadOnly)).OrderBy(m => m.MountPath).ToList();
        if (!wantMounts.SequenceEqual(haveMounts)) d.Add("volumes changed");
        return d;
    }

    private static string Describe(DesiredPod p) =>
        $"{p.Image}, {p.Replicas} × {p.Cpu} vCPU / {p.MemoryMiB} MiB{(p.Mounts.Count > 0 ? ", mounts " + string.Join(", ", p.Mounts.Select(m => $"{m.VolumeKey}:{m.MountPath}")) : "")}";

    public void Render(IAnsiConsole console)
    {
        if (Empty)
        {
            console.MarkupLine($"project [bold]{Markup.Escape(Project)}[/]: no changes, everything is as the file says");
            return;
        }
        console.MarkupLine($"project [bold]{Markup.Escape(Project)}[/] (namespace {Markup.Escape(Project)}):");
        foreach (var c in Changes)
        {
            var (sign, colour) = c.Kind switch
            {
                ChangeKind.Create => ("+", "green"),
                ChangeKind.Update => ("~", "yellow"),
                ChangeKind.Replace => ("-/+", "yellow"),
                _ => ("-", "red"),
            };
            var detail = c.Detail.Length > 0 ? $": {c.Detail}" : "";
            console.MarkupLine($"  [{colour}]{sign}[/] {c.Resource} {Markup.Escape(c.Name)}{Markup.Escape(detail)}");
        }
        console.MarkupLine($"plan: {Count(ChangeKind.Create)} to create, {Count(ChangeKind.Update)} to change, {Count(ChangeKind.Replace)} to replace, {Count(ChangeKind.Delete)} to delete");
    }

    public int Count(ChangeKind kind) => Changes.Count(c => c.Kind == kind);

    /// <summary>The plan as data, for -o json|yaml.</summary>
    public object Summary() => new
    {
        project = Project,
        changes = Changes.Select(c => new { action = c.Kind.ToString().ToLowerInvariant(), resource = c.Resource, name = c.Name, detail = c.Detail }),
    };
}
