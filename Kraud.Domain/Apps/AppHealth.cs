using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;

namespace Kraud.Domain.Apps;

/// <summary>
/// An app's parts together, as the rollout waits for them and the API shows them: RUNNING when every volume is usable, the
/// ingress placed and every pod RUNNING (with a note when a volume runs on fewer copies); DEGRADED with the part's reason
/// when a volume cannot be placed or lost its majority, the ingress was deleted, or a pod failed; PROVISIONING otherwise.
/// </summary>
public static class AppHealth
{
    public static (string State, string? Reason) Of(IReadOnlyList<AppPodPart> pods, IReadOnlyList<AppVolumePart> volumes, AppIngress? ingress,
        IReadOnlyDictionary<Guid, Pod> podStates, IReadOnlyDictionary<Guid, Volume> volumeStates, Ingress? ingressState)
    {
        string? waiting = null, note = null;
        foreach (var part in volumes)
        {
            var volume = volumeStates.GetValueOrDefault(part.VolumeId);
            if (volume is null || volume.Deleting || volume.Deleted) return ("DEGRADED", $"volume {part.Name}: it was deleted");
            if (volume.State == VolumeState.Unavailable) return ("DEGRADED", $"volume {part.Name}: {volume.Reason}");
            if (!volume.Usable && volume.PlacementRefusal is { } refusal) return ("DEGRADED", $"volume {part.Name}: cannot be placed: {refusal}");
            if (volume.State == VolumeState.Degraded) note ??= $"volume {part.Name}: {volume.Reason}";
            else if (volume.State != VolumeState.Healthy) waiting ??= $"volume {part.Name} is {volume.State.ToString().ToUpperInvariant()}";
        }
        if (ingress is not null)
        {
            if (ingressState is null || ingressState.Deleted) return ("DEGRADED", $"ingress {ingress.Name}: it was deleted");
            if (ingressState.Replicas.IsEmpty && ingressState.Kind != IngressKind.Direct) waiting ??= $"ingress {ingress.Name} has no replica placed";
        }
        var (state, reason) = PartsHealth.Of(pods.Select(p => new PartsHealth.Part($"service {p.Service}", podStates.GetValueOrDefault(p.PodId))).ToList(), false);
        return state switch
        {
            "RUNNING" when waiting is not null => ("PROVISIONING", waiting),
            "RUNNING" => (state, note),
            _ => (state, reason ?? waiting),
        };
    }
}
