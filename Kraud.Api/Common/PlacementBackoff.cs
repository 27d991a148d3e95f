namespace Kraud.Api.Common;

/// <summary>
/// How long a refused placement (a pod, a volume) waits before it is tried again: 1 s doubling to at most 10 s, as
/// Kubernetes' scheduler backs off an unschedulable pod. A host that gets room asks at once (Fleet's HostHasRoom).
/// </summary>
public static class PlacementBackoff
{
    public static TimeSpan For(int attempt) => TimeSpan.FromSeconds(Math.Min(10, 1 << Math.Clamp(attempt - 1, 0, 4)));
}
