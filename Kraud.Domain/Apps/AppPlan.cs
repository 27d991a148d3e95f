using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;

namespace Kraud.Domain.Apps;

/// <summary>How a template and its configuration become pods, volumes and an ingress: names, images, env with secret references, zone.</summary>
public static class AppPlan
{
    /// <summary>A secret in a pod's env: the host runtime gets the value at boot; events and views only ever see this reference.</summary>
    public static string SecretReference(Guid appId, string field) => $"${{secret:{appId:D}/{field}}}";

    /// <summary>Volume and ingress names are per tenant (not per namespace): the app id's first digits keep two apps' apart.</summary>
    public static string VolumeName(string app, Guid appId, string volume) => $"{app}-{volume}-{appId:N}"[..(app.Length + volume.Length + 10)];

    public static string IngressName(string app, Guid appId) => $"{app}-{appId:N}"[..(app.Length + 9)];

    /// <param name="current">The app as it runs, for an upgrade: its volumes are kept (same ids, same data) and its ingress too.</param>
    public static AppRollout Rollout(Guid appId, Guid tenantId, int number, string name, string ns, AppTemplate t, ResolvedConfig config,
        IReadOnlyList<ChangelogEntry> changelog, AppInstance? current = null)
    {
        var zone = t.Config.Where(f => f.Kind == ConfigKind.Zone).Select(f => config.Values.GetValueOrDefault(f.Name)).FirstOrDefault(z => z is not null);
        var secretFields = t.Config.Where(f => f.Kind == ConfigKind.Secret).Select(f => f.Name).ToHashSet();
        string Fill(string text) => AppTemplates.Placeholder().Replace(text, m =>
            secretFields.Contains(m.Groups["field"].Value) ? SecretReference(appId, m.Groups["field"].Value) : config.Values.GetValueOrDefault(m.Groups["field"].Value) ?? "");

        var kept = current?.Volumes ?? [];
        if (kept.FirstOrDefault(k => t.Volumes.All(v => v.Name != k.Name)) is { } dropped)
            throw new DomainException(ErrorCode.Precondition,
                $"{t.Name} {t.Version} has no volume '{dropped.Name}', which holds this app's data: Kraud does not delete an app's data on upgrade.");
        var volumes = t.Volumes.Select(v =>
        {
            var size = int.Parse(Fill(v.SizeGiB), CultureInfo.InvariantCulture);
            var mounts = t.Services.SelectMany(s => s.Volumes.Where(m => m.Volume == v.Name).Select(m => new AppVolumeMount(s.Name, m.MountPath))).ToList();
            if (kept.FirstOrDefault(k => k.Name == v.Name) is not { } old)
                return new AppVolumePart(v.Name, DeterministicId.From("app-volume", appId, number, v.Name), v.Class, size, mounts);
            if (old.Class != v.Class)
                throw new DomainException(ErrorCode.Precondition,
                    $"{t.Name} {t.Version} wants volume '{v.Name}' as {v.Class}; the app's is {old.Class}, and a volume's class cannot change.");
            if (old.SizeGiB != size)
                throw new DomainException(ErrorCode.Precondition,
                    $"volume '{v.Name}' is {old.SizeGiB} GiB and this upgrade asks for {size} GiB: Kraud cannot resize volumes yet, keep the size.");
            return old with { Mounts = mounts, Existing = true };
        }).ToList();

        var pods = t.Services.Select(s => new AppPodPart(s.Name, DeterministicId.From("app-pod", appId, number, s.Name),
            new PodSpec($"{name}-{s.Name}-r{number}", ns, Fill(s.Image), s.Command.Select(Fill).ToList(),
                s.Env.ToDictionary(e => e.Key, e => Fill(e.Value)), s.Cpu, s.MemoryMiB, zone, false, s.EphemeralGiB,
                s.Volumes.Select(m => Mount(volumes.Single(v => v.Name == m.Volume), m.MountPath)).ToList()),
            s.Replicas)).ToList();

        var routes = t.Ingresses.Select(i => new AppIngressPart(Fill(i.Host), i.Path, i.Service, i.Port)).ToList();
        var ingress = routes.Count == 0 ? null
            : current?.Ingress is { } existing ? existing with { Existing = true }
            : new AppIngress(DeterministicId.From("app-ingress", appId, number), IngressName(name, appId));

        // A writable BLOCK volume attaches to one pod at a time: the old pod that has it must stop before the new one can start.
        var blockKept = volumes.Where(v => v.Existing && v.Class == "BLOCK").Select(v => v.VolumeId).ToHashSet();
        var stopFirst = (current?.Parts ?? []).Where(p => p.Spec.Mounts.Any(m => !m.ReadOnly && blockKept.Contains(m.VolumeId)))
            .Select(p => p.Service).ToList();
        return new AppRollout(number, t.Version, pods, config.Values, [.. secretFields.Order(StringComparer.Ordinal)], changelog, volumes, routes, ingress,
            stopFirst);
    }

    private static VolumeMount Mount(AppVolumePart volume, string path) =>
        new(volume.VolumeId, path, false, Enum.Parse<VolumeClass>(volume.Class, ignoreCase: true));
}
