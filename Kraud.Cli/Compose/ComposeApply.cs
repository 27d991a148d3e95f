using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Compose;

/// <summary>
/// Carries out a plan in the order Kraud needs: ingresses and pods that go are deleted first (a replaced pod's name is
/// free again once the old one stopped, and a stopped pod lets go of its volumes), then volumes, pods and ingresses are
/// created, replica counts changed, and volumes deleted last (never while a pod still mounts them).
/// </summary>
public static class ComposeApply
{
    public static async Task<IReadOnlyList<string>> RunAsync(CommandContext c, ComposeProject project, ComposePlan plan, Action<string> step)
    {
        foreach (var change in plan.Changes.Where(x => x.Resource == "ingress" && x.Kind is ChangeKind.Delete or ChangeKind.Replace))
        {
            step($"deleting ingress {change.Name}");
            await c.RunAsync(IngressesApi.Delete, new { id = change.ExistingIngress!.Id });
        }
        var stopping = new List<Pod>();
        foreach (var change in plan.Changes.Where(x => x.Resource == "pod" && x.Kind is ChangeKind.Delete or ChangeKind.Replace))
        {
            step($"deleting pod {change.Name}");
            stopping.Add(await c.RunAsync(PodsApi.Delete, new { id = change.Existing!.Id, expectedVersion = (int?)null }));
        }
        foreach (var pod in stopping) await UntilStoppedAsync(c, pod, step);

        var volumeIds = (await VolumesApi.AllAsync(c)).Where(v => v.State != "DELETED").ToDictionary(v => v.Name, v => v.Id);
        foreach (var change in plan.Changes.Where(x => x.Resource == "volume" && x.Kind == ChangeKind.Create))
        {
            step($"creating volume {change.Name}");
            var v = change.Volume!;
            var created = await c.RunAsync(VolumesApi.Create, new { input = new { name = v.Name, @class = v.Class, sizeGiB = v.SizeGiB, zone = v.Zone } });
            volumeIds[v.Name] = created.Id;
        }

        var podIds = (await PodsApi.AllAsync(c, project.Name)).Where(p => p.State != "STOPPED").ToDictionary(p => p.Name, p => p.Id);
        foreach (var change in plan.Changes.Where(x => x.Resource == "pod" && x.Kind is ChangeKind.Create or ChangeKind.Replace))
        {
            step($"creating pod {change.Name}");
            var p = change.Pod!;
            var input = new
            {
                name = p.Name, @namespace = project.Name, image = p.Image, command = p.Command, env = p.Env, cpu = p.Cpu, memoryMiB = p.MemoryMiB,
                replicas = p.Replicas,
                volumes = p.Mounts.Select(m => new
                {
                    volumeId = volumeIds[project.Volumes.Single(v => v.Key == m.VolumeKey).Name], mountPath = m.MountPath, readOnly = m.ReadOnly,
                }).ToList(),
            };
            podIds[p.Name] = (await c.RunAsync(PodsApi.Create, new { input })).Id;
        }
        foreach (var change in plan.Changes.Where(x => x.Resource == "pod" && x.Kind == ChangeKind.Update))
        {
            step($"scaling pod {change.Name} to {change.Pod!.Replicas}");
            await c.RunAsync(PodsApi.Scale, new { id = change.Existing!.Id, replicas = change.Pod.Replicas, expectedVersion = change.Existing.Version });
        }
        foreach (var change in plan.Changes.Where(x => x.Resource == "ingress" && x.Kind is ChangeKind.Create or ChangeKind.Replace))
        {
            step($"creating ingress {change.Name}");
            var i = change.Ingress!;
            await c.RunAsync(IngressesApi.Create, new
            {
                input = new { name = i.Name, kind = "MANAGED", routes = new[] { new { host = i.Host, path = i.Path, podId = podIds[i.Service], port = i.Port } } },
            });
        }
        foreach (var change in plan.Changes.Where(x => x.Resource == "volume" && x.Kind == ChangeKind.Delete))
        {
            step($"deleting volume {change.Name}");
            await c.RunAsync(VolumesApi.Delete, new { id = change.ExistingVolume!.Id });
        }
        return project.Pods.Where(p => podIds.ContainsKey(p.Name)).Select(p => podIds[p.Name]).ToList();
    }

    private static async Task UntilStoppedAsync(CommandContext c, Pod pod, Action<string> step)
    {
        step($"waiting for pod {pod.Name} to stop");
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (true)
        {
            var now = await c.RunAsync(PodsApi.Get, new { id = pod.Id });
            if (now is null || now.State == "STOPPED") return;
            if (DateTime.UtcNow > deadline) throw new KraudApiException("TIMEOUT", $"pod {pod.Name} did not stop within 5 minutes ({now.State})");
            await Task.Delay(250, c.Cancellation);
        }
    }
}
