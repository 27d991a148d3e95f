using Kraud.Domain.Fleet;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;

namespace Kraud.Projections.Replay;

/// <summary>What a resource looked like after the events of its stream folded so far, and how many there were.</summary>
public sealed record Versioned<T>(T State, int Version);

public enum ResourceKind : byte { Host = (byte)'h', Pod = (byte)'p', Volume = (byte)'v', Ingress = (byte)'i' }

/// <summary>
/// The platform projection behind replay: every host, pod, volume and ingress folded with the same Evolve the live read
/// models use, one event at a time in log order. Checkpoints are this state at a sequence number, so a fold that starts
/// from a checkpoint and one that starts from event 0 run the very same code over the very same events.
/// A pod whose deletion finished, and a deleted volume or ingress, are gone: they leave the state, so checkpoints stay as
/// large as the platform is, not as large as its history (their streams get no events after that).
/// </summary>
public sealed class PlatformState
{
    public Dictionary<Guid, Host> Hosts { get; } = [];
    public Dictionary<Guid, Versioned<Pod>> Pods { get; } = [];
    public Dictionary<Guid, Versioned<Volume>> Volumes { get; } = [];
    public Dictionary<Guid, Versioned<Ingress>> Ingresses { get; } = [];

    /// <summary>Resources whose state changed (or that went) since the last checkpoint was taken.</summary>
    public HashSet<Guid> Changed { get; } = [];

    public void Apply(Guid streamId, object data)
    {
        switch (data)
        {
            case PodRequested:
                Pods[streamId] = new Versioned<Pod>(Pod.Initial.Evolve(data), 1);
                break;
            case HostRegistered:
                Hosts[streamId] = Host.Initial.Evolve(data);
                break;
            case VolumeRequested:
                Volumes[streamId] = new Versioned<Volume>(Volume.Initial.Evolve(data), 1);
                break;
            case IngressCreated:
                Ingresses[streamId] = new Versioned<Ingress>(Ingress.Initial.Evolve(data), 1);
                break;
            default:
                if (Pods.TryGetValue(streamId, out var pod))
                {
                    var next = pod.State.Evolve(data);
                    if (next.Deleting && next.Instances.IsEmpty) Pods.Remove(streamId);
                    else Pods[streamId] = new Versioned<Pod>(next, pod.Version + 1);
                }
                else if (Hosts.TryGetValue(streamId, out var host)) Hosts[streamId] = host.Evolve(data);
                else if (Volumes.TryGetValue(streamId, out var volume))
                {
                    var next = volume.State.Evolve(data);
                    if (next.Deleted) Volumes.Remove(streamId);
                    else Volumes[streamId] = new Versioned<Volume>(next, volume.Version + 1);
                }
                else if (Ingresses.TryGetValue(streamId, out var ingress))
                {
                    var next = ingress.State.Evolve(data);
                    if (next.Deleted) Ingresses.Remove(streamId);
                    else Ingresses[streamId] = new Versioned<Ingress>(next, ingress.Version + 1);
                }
                else return;
                break;
        }
        Changed.Add(streamId);
    }

    /// <summary>How many resources the state holds (the rows a checkpoint of it has valid at its sequence number).</summary>
    public int Count => Hosts.Count + Pods.Count + Volumes.Count + Ingresses.Count;

    /// <summary>Whether events of this stream change the state (it is a host, pod, volume or ingress it holds).</summary>
    public bool Holds(Guid id) => Pods.ContainsKey(id) || Hosts.ContainsKey(id) || Volumes.ContainsKey(id) || Ingresses.ContainsKey(id);

    /// <summary>The state of one resource to store in a checkpoint, or null when it is gone (or never was one).</summary>
    public (ResourceKind Kind, object State, int Version)? Resource(Guid id) =>
        Pods.TryGetValue(id, out var pod) ? (ResourceKind.Pod, pod.State, pod.Version)
        : Hosts.TryGetValue(id, out var host) ? (ResourceKind.Host, host, 0)
        : Volumes.TryGetValue(id, out var volume) ? (ResourceKind.Volume, volume.State, volume.Version)
        : Ingresses.TryGetValue(id, out var ingress) ? (ResourceKind.Ingress, ingress.State, ingress.Version)
        : null;

    /// <summary>Puts back one resource read from a checkpoint.</summary>
    public void Restore(Guid id, ResourceKind kind, object state, int version)
    {
        switch (kind)
        {
            case ResourceKind.Host: Hosts[id] = (Host)state; break;
            case ResourceKind.Pod: Pods[id] = new Versioned<Pod>((Pod)state, version); break;
            case ResourceKind.Volume: Volumes[id] = new Versioned<Volume>((Volume)state, version); break;
            case ResourceKind.Ingress: Ingresses[id] = new Versioned<Ingress>((Ingress)state, version); break;
        }
    }

    public static Type TypeOf(ResourceKind kind) => kind switch
    {
        ResourceKind.Host => typeof(Host),
        ResourceKind.Pod => typeof(Pod),
        ResourceKind.Volume => typeof(Volume),
        _ => typeof(Ingress),
    };
}
