using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Domain.Apps;

/// <summary>How a template and its configuration become pods: names, images, env with secret references, zone.</summary>
public static class AppPlan
{
    /// <summary>A secret in a pod's env: the host runtime gets the value at boot; events and views only ever see this reference.</summary>
    public static string SecretReference(Guid appId, string field) => $"${{secret:{appId:D}/{field}}}";

    public static AppRollout Rollout(Guid appId, Guid tenantId, int number, string name, string ns, AppTemplate t, ResolvedConfig config,
        IReadOnlyList<ChangelogEntry> changelog)
    {
        var zone = t.Config.Where(f => f.Kind == ConfigKind.Zone).Select(f => config.Values.GetValueOrDefault(f.Name)).FirstOrDefault(z => z is not null);
        var secretFields = t.Config.Where(f => f.Kind == ConfigKind.Secret).Select(f => f.Name).ToHashSet();
        string Fill(string text) => AppTemplates.Placeholder().Replace(text, m =>
            secretFields.Contains(m.Groups[1].Value) ? SecretReference(appId, m.Groups[1].Value) : config.Values.GetValueOrDefault(m.Groups[1].Value) ?? "");
        var pods = t.Services.Select(s => new AppPodPart(s.Name, DeterministicId.From("app-pod", appId, number, s.Name),
            new PodSpec($"{name}-{s.Name}-r{number}", ns, Fill(s.Image), s.Command.Select(Fill).ToList(),
                s.Env.ToDictionary(e => e.Key, e => Fill(e.Value)), s.Cpu, s.MemoryMiB, zone, false, s.EphemeralGiB), s.Replicas)).ToList();
        var volumes = t.Volumes.Select(v => new AppVolumePart(v.Name, DeterministicId.From("app-volume", appId, number, v.Name), v.Class,
            int.Parse(Fill(v.SizeGiB)), t.Services.SelectMany(s => s.Volumes.Where(m => m.Volume == v.Name).Select(m => new AppVolumeMount(s.Name, m.MountPath))).ToList()))
            .ToList();
        var ingresses = t.Ingresses.Select(i => new AppIngressPart(Fill(i.Host), i.Path, i.Service, i.Port)).ToList();
        return new AppRollout(number, t.Version, pods, config.Values, [.. secretFields.Order(StringComparer.Ordinal)], changelog, volumes, ingresses);
    }
}
