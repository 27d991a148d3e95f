namespace Kraud.Domain.Pods;

/// <summary>
/// The state of a product made of pods (a Kubernetes cluster, an app), read from its parts: RUNNING when all run,
/// DEGRADED with the first broken part's reason, PROVISIONING while parts come up, DELETING until every part stopped.
/// </summary>
public static class PartsHealth
{
    public sealed record Part(string Name, Pod? Pod);

    public static (string State, string? Reason) Of(IReadOnlyList<Part> parts, bool deleting)
    {
        if (deleting) return parts.All(p => p.Pod is null or { State: PodState.Stopped }) ? ("DELETED", null) : ("DELETING", null);
        if (parts.FirstOrDefault(p => p.Pod?.State is PodState.Failed or PodState.Unschedulable) is { Pod: { } broken } part)
            return ("DEGRADED", $"{part.Name}: {broken.Reason}");
        return parts.All(p => p.Pod?.State == PodState.Running) ? ("RUNNING", null) : ("PROVISIONING", null);
    }
}
