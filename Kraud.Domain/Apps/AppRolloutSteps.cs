namespace Kraud.Domain.Apps;

/// <summary>One step (one transaction) of a rollout.</summary>
public abstract record AppRolloutStep(string Part);

/// <summary>An old pod that holds a BLOCK volume the new version mounts is deleted first (stop-before-start).</summary>
public sealed record StopOldPod(AppPodPart Pod) : AppRolloutStep($"service {Pod.Service}");

public sealed record CreateAppVolume(AppVolumePart Volume) : AppRolloutStep($"volume {Volume.Name}");

public sealed record CreateAppPod(AppPodPart Pod) : AppRolloutStep($"service {Pod.Service}");

public sealed record CreateAppIngress(AppIngress Ingress, IReadOnlyList<(AppIngressPart Route, Guid PodId)> Routes) : AppRolloutStep($"ingress {Ingress.Name}");

public static class AppRolloutSteps
{
    /// <summary>
    /// The steps of the app's rollout in progress, in order: stop what must stop first, create new volumes (before the pods
    /// that mount them), the pods, then the ingress (its routes name the pods). Kept volumes and a kept ingress have no step.
    /// Derived from the app's state, which does not change while the rollout runs, so every step sees the same list.
    /// </summary>
    public static IReadOnlyList<AppRolloutStep> Of(AppInstance app)
    {
        if (app.Rollout is not { } rollout) return [];
        var steps = new List<AppRolloutStep>();
        steps.AddRange(app.Parts.Where(p => rollout.StoppedFirst.Contains(p.Service)).Select(p => new StopOldPod(p)));
        steps.AddRange(rollout.VolumeParts.Where(v => !v.Existing).Select(v => new CreateAppVolume(v)));
        steps.AddRange(rollout.Pods.Select(p => new CreateAppPod(p)));
        if (rollout.Ingress is { Existing: false } ingress) steps.Add(new CreateAppIngress(ingress, RoutesOf(rollout)));
        return steps;
    }

    /// <summary>Each template route goes to the rollout's pod of its service.</summary>
    public static IReadOnlyList<(AppIngressPart Route, Guid PodId)> RoutesOf(AppRollout rollout) =>
        rollout.Routes.Select(r => (r, rollout.Pods.Single(p => p.Service == r.Service).PodId)).ToList();
}
