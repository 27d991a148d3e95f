using Kraud.Domain.Volumes;

namespace Kraud.Domain.Scheduling;

/// <summary>
/// What the volumes a pod mounts say about placing it: the zone it must run in (a pod that mounts a zonal volume runs in
/// the volume's zone), or that it must wait (a volume still being set up), or why it cannot start (a volume without a
/// majority of healthy replicas).
/// </summary>
public static class VolumeAffinity
{
    public abstract record Verdict;
    public sealed record Go(string? Zone) : Verdict;
    public sealed record Wait(string Why) : Verdict;
    public sealed record Refuse(string Reason) : Verdict;

    /// <param name="volumes">The mounted volumes as they are now; null where a volume no longer exists.</param>
    public static Verdict For(string? podZone, IReadOnlyList<(Guid Id, Volume? Volume)> volumes)
    {
        string? zone = null;
        foreach (var (id, volume) in volumes)
        {
            if (volume is not { Exists: true, Deleted: false }) return new Refuse($"Volume {id} the pod mounts does not exist.");
            if (volume.State == VolumeState.Unavailable)
                return new Refuse($"Volume {volume.Name} is UNAVAILABLE ({volume.Reason}): pods that need it do not start.");
            if (!volume.Usable) return new Wait($"volume {volume.Name} is {volume.State.ToString().ToUpperInvariant()}");
            if (zone is not null && volume.Zone != zone)
                return new Refuse($"The pod mounts volumes in zones {zone} and {volume.Zone}: a pod runs in one zone, so its volumes must share it.");
            zone = volume.Zone;
        }
        if (podZone is not null && zone is not null && podZone != zone)
            return new Refuse($"The pod asks for zone {podZone} but its volumes live in zone {zone}: a pod that mounts a zonal volume runs in the volume's zone.");
        return new Go(podZone ?? zone);
    }
}
