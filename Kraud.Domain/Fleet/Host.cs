using System.Collections.Immutable;
using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.Fleet;

public enum HostRole { Compute, Storage, Ingress }

public enum HostState { Ready, Cordoned, Draining, Failed }

public sealed record HostRegistered(
    Guid HostId, string Name, string Zone, string Datacenter, string Rack, HostRole Role,
    int Cpu, int MemoryMiB, int NvmeGiB, bool SevSnp, string RegisteredBy, DateTimeOffset At);

public sealed record HostCordoned(Guid HostId, string By, DateTimeOffset At);

public sealed record HostUncordoned(Guid HostId, string By, DateTimeOffset At);

public sealed record HostDrainRequested(Guid HostId, string By, DateTimeOffset At);

/// <summary>A draining host runs nothing any more; it stays out of placement (cordoned) until uncordoned.</summary>
public sealed record HostDrained(Guid HostId, DateTimeOffset At);

/// <summary>The host stopped sending heartbeats: the evidence is when it was last heard of and how many beats it missed.</summary>
public sealed record HostFailed(Guid HostId, DateTimeOffset LastHeartbeat, int MissedHeartbeats, string Reason, DateTimeOffset At);

/// <summary>A failed host is heard of again; what it still runs is reconciled against what should run there.</summary>
public sealed record HostRecovered(Guid HostId, DateTimeOffset FailedSince, DateTimeOffset At);

/// <summary>The host runs a microVM nothing asked for (e.g. one it kept while it was cut off): the control plane stopped it.</summary>
public sealed record UnknownMicroVmStopped(Guid HostId, Guid VmId, string Reason, DateTimeOffset At);

/// <summary>The scheduler reserved this host's capacity for one microVM.</summary>
public sealed record MicroVmPlaced(Guid HostId, Guid VmId, Guid PodId, Guid TenantId, int Cpu, int MemoryMiB, DateTimeOffset At);

/// <summary>The microVM is gone from the host (stopped or failed) and its capacity is free again.</summary>
public sealed record MicroVmReleased(Guid HostId, Guid VmId, string Why, DateTimeOffset At);

/// <summary>The host runtime announced the public half of its WireGuard key (its private half never leaves the host).</summary>
public sealed record HostWireGuardKeyAnnounced(Guid HostId, string PublicKey, string Endpoint, DateTimeOffset At);

/// <summary>The host runtime told how its guests are accelerated (KVM or TCG) and why; a host without a hypervisor never does.</summary>
/// <summary>An INGRESS host's proxy listens at Endpoint (ip:port) and reaches the VPCs from TunnelAddress through WireGuard.</summary>
public sealed record HostIngressProxyAnnounced(Guid HostId, string Endpoint, string TunnelAddress, DateTimeOffset At);

public sealed record HostAcceleratorReported(Guid HostId, string Accelerator, string Reason, DateTimeOffset At);

public sealed record HostVm(Guid VmId, Guid PodId, Guid TenantId, int Cpu, int MemoryMiB);

/// <summary>The volume scheduler reserved room on this storage host for one replica of a volume.</summary>
public sealed record StorageReserved(Guid HostId, Guid VolumeId, int SizeGiB, DateTimeOffset At);

/// <summary>The replica is gone from this host (erased, failed or lost) and its room is free again.</summary>
public sealed record StorageReleased(Guid HostId, Guid VolumeId, DateTimeOffset At);

public sealed record Host(
    Guid Id, string Name, string Zone, string Datacenter, string Rack, HostRole Role, HostState State,
    int Cpu, int MemoryMiB, int NvmeGiB, bool SevSnp, bool Exists, DateTimeOffset RegisteredAt,
    ImmutableDictionary<Guid, HostVm> Vms) : IState<Host>
{
    public static Host Initial { get; } = new(Guid.Empty, "", "", "", "", HostRole.Compute, HostState.Ready, 0, 0, 0, false, false, default,
        ImmutableDictionary<Guid, HostVm>.Empty);

    public DateTimeOffset? FailedAt { get; init; }

    /// <summary>Drained and not taken back yet: what else runs there (ingress replicas) should move off too.</summary>
    public bool Drained { get; init; }

    /// <summary>Volume replicas on this storage host and the GiB each takes.</summary>
    public ImmutableDictionary<Guid, int> Replicas { get; init; } = ImmutableDictionary<Guid, int>.Empty;

    public int StorageUsedGiB => Replicas.Values.Sum();
    public string? WireGuardPublicKey { get; init; }
    public string? WireGuardEndpoint { get; init; }

    /// <summary>KVM or TCG: how this host's hypervisor runs guests, as its runtime last reported; null for simulated hosts.</summary>
    public string? Accelerator { get; init; }

    public string? AcceleratorReason { get; init; }

    /// <summary>Where this INGRESS host's proxy listens (ip:port) and its address inside the WireGuard mesh; null while it runs none.</summary>
    public string? IngressEndpoint { get; init; }

    public string? IngressTunnelAddress { get; init; }

    public int CpuUsed => Vms.Values.Sum(v => v.Cpu);
    public int MemoryUsedMiB => Vms.Values.Sum(v => v.MemoryMiB);

    /// <summary>A host's id follows from its name, so a host runtime that announces itself twice is the same host.</summary>
    public static Guid IdFor(string hostName) => DeterministicId.From("host", hostName);

    /// <summary>The Wolverine queue this host's runtime listens on; names are DNS labels, so they fit a table name.</summary>
    public static string QueueName(string hostName) => "host_" + hostName.Replace('-', '_');

    public Host Evolve(object @event) => @event switch
    {
        HostRegistered e => new Host(e.HostId, e.Name, e.Zone, e.Datacenter, e.Rack, e.Role, HostState.Ready, e.Cpu, e.MemoryMiB, e.NvmeGiB,
            e.SevSnp, true, e.At, ImmutableDictionary<Guid, HostVm>.Empty),
        HostCordoned => this with { State = HostState.Cordoned },
        HostUncordoned => this with { State = HostState.Ready, Drained = false },
        HostDrainRequested => this with { State = HostState.Draining },
        HostDrained => this with { State = HostState.Cordoned, Drained = true },
        HostFailed e => this with { State = HostState.Failed, FailedAt = e.At },
        HostRecovered => this with { State = HostState.Ready, FailedAt = null },
        MicroVmPlaced e => this with { Vms = Vms.SetItem(e.VmId, new HostVm(e.VmId, e.PodId, e.TenantId, e.Cpu, e.MemoryMiB)) },
        MicroVmReleased e => this with { Vms = Vms.Remove(e.VmId) },
        StorageReserved e => this with { Replicas = Replicas.SetItem(e.VolumeId, e.SizeGiB) },
        StorageReleased e => this with { Replicas = Replicas.Remove(e.VolumeId) },
        HostWireGuardKeyAnnounced e => this with { WireGuardPublicKey = e.PublicKey, WireGuardEndpoint = e.Endpoint },
        HostAcceleratorReported e => this with { Accelerator = e.Accelerator, AcceleratorReason = e.Reason },
        HostIngressProxyAnnounced e => this with { IngressEndpoint = e.Endpoint, IngressTunnelAddress = e.TunnelAddress },
        _ => this,
    };
}

public sealed record RegisterHost(
    Guid HostId, string Name, string Zone, string Datacenter, string Rack, HostRole Role, int Cpu, int MemoryMiB, int NvmeGiB, bool SevSnp,
    Principal By, DateTimeOffset At);

public sealed record CordonHost(Guid HostId, Principal By, DateTimeOffset At);

public sealed record UncordonHost(Guid HostId, Principal By, DateTimeOffset At);

public sealed record DrainHost(Guid HostId, Principal By, DateTimeOffset At);

/// <summary>Asked whenever a draining host may have become empty; idempotent, so it is safe to ask often.</summary>
public sealed record FinishDrain(Guid HostId, DateTimeOffset At);

public sealed record MarkHostFailed(Guid HostId, DateTimeOffset LastHeartbeat, int MissedHeartbeats, DateTimeOffset At);

public sealed record AnnounceWireGuardKey(Guid HostId, string PublicKey, string Endpoint, DateTimeOffset At);

public sealed record AnnounceIngressProxy(Guid HostId, string Endpoint, string TunnelAddress, DateTimeOffset At);

public sealed record ReportAccelerator(Guid HostId, string Accelerator, string Reason, DateTimeOffset At);

public sealed record MarkHostAlive(Guid HostId, DateTimeOffset At);

public static class HostDecider
{
    public static IReadOnlyList<object> Decide(RegisterHost c, Host state)
    {
        if (c.By.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can register hosts.");
        if (state.Exists) throw DomainException.Conflict($"Host {c.HostId} exists already.");
        Names.RequireDnsLabel(c.Name, "name");
        Names.RequireDnsLabel(c.Zone, "zone");
        Names.RequireDnsLabel(c.Rack, "rack");
        Names.RequireText(c.Datacenter, "datacenter", 63);
        Names.RequireRange(c.Cpu, 1, 1024, "cpu");
        Names.RequireRange(c.MemoryMiB, 512, 64 * 1024 * 1024, "memoryMiB");
        Names.RequireRange(c.NvmeGiB, 0, 1024 * 1024, "nvmeGiB");
        return [new HostRegistered(c.HostId, c.Name, c.Zone, c.Datacenter, c.Rack, c.Role, c.Cpu, c.MemoryMiB, c.NvmeGiB, c.SevSnp, c.By.Actor, c.At)];
    }

    public static IReadOnlyList<object> Decide(CordonHost c, Host state)
    {
        if (c.By.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can cordon hosts.");
        if (!state.Exists) throw DomainException.NotFound("Host", c.HostId);
        return state.State == HostState.Ready ? [new HostCordoned(c.HostId, c.By.Actor, c.At)] : [];
    }

    public static IReadOnlyList<object> Decide(DrainHost c, Host state)
    {
        if (c.By.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can drain hosts.");
        if (!state.Exists) throw DomainException.NotFound("Host", c.HostId);
        return state.State switch
        {
            HostState.Ready or HostState.Cordoned when state.Vms.IsEmpty => [new HostDrainRequested(c.HostId, c.By.Actor, c.At), new HostDrained(c.HostId, c.At)],
            HostState.Ready or HostState.Cordoned => [new HostDrainRequested(c.HostId, c.By.Actor, c.At)],
            HostState.Draining => [],
            _ => throw new DomainException(ErrorCode.Precondition, $"Host {state.Name} is FAILED: its pods were moved when it failed."),
        };
    }

    /// <summary>
    /// A drain ends when the host runs nothing. It is decided on the host's stream, not by whoever released the last VM:
    /// two VMs released at once each see the other still there, and neither would end it.
    /// </summary>
    public static IReadOnlyList<object> Decide(FinishDrain c, Host state) =>
        state is { Exists: true, State: HostState.Draining, Vms.IsEmpty: true } ? [new HostDrained(c.HostId, c.At)] : [];

    /// <summary>Failure detection may fire more than once for one silence: a host fails once.</summary>
    public static IReadOnlyList<object> Decide(MarkHostFailed c, Host state) =>
        state is { Exists: true, State: not HostState.Failed }
            ? [new HostFailed(c.HostId, c.LastHeartbeat, c.MissedHeartbeats,
                $"no heartbeat from {state.Name} since {c.LastHeartbeat:O} ({c.MissedHeartbeats} missed)", c.At)]
            : [];

    /// <summary>A restarted host runtime makes a new key pair; the same key announced again changes nothing.</summary>
    public static IReadOnlyList<object> Decide(AnnounceWireGuardKey c, Host state)
    {
        if (!state.Exists) throw DomainException.NotFound("Host", c.HostId);
        if (!WireGuardKey.IsPublicKey(c.PublicKey))
            throw DomainException.Validation($"Host {state.Name} announced '{c.PublicKey}', which is not a WireGuard public key (32 bytes, base64).");
        Names.RequireText(c.Endpoint, "endpoint", 255);
        return state.WireGuardPublicKey == c.PublicKey && state.WireGuardEndpoint == c.Endpoint
            ? []
            : [new HostWireGuardKeyAnnounced(c.HostId, c.PublicKey, c.Endpoint, c.At)];
    }

    /// <summary>Each start of a host runtime reports its accelerator; only a change (a probe that now decides otherwise) is a fact.</summary>
    public static IReadOnlyList<object> Decide(ReportAccelerator c, Host state)
    {
        if (!state.Exists) throw DomainException.NotFound("Host", c.HostId);
        if (c.Accelerator is not ("KVM" or "TCG"))
            throw DomainException.Validation($"Host {state.Name} reported accelerator '{c.Accelerator}'; known are KVM and TCG.");
        Names.RequireText(c.Reason, "reason", 500);
        return state.Accelerator == c.Accelerator && state.AcceleratorReason == c.Reason
            ? []
            : [new HostAcceleratorReported(c.HostId, c.Accelerator, c.Reason, c.At)];
    }

    /// <summary>An INGRESS host runtime with a real network runs a proxy; only a changed address is a fact.</summary>
    public static IReadOnlyList<object> Decide(AnnounceIngressProxy c, Host state)
    {
        if (!state.Exists) throw DomainException.NotFound("Host", c.HostId);
        if (state.Role != HostRole.Ingress) throw new DomainException(ErrorCode.Precondition, $"Host {state.Name} is no INGRESS host; it runs no ingress proxy.");
        if (!System.Net.IPEndPoint.TryParse(c.Endpoint, out var endpoint) || endpoint.Port == 0)
            throw DomainException.Validation($"Host {state.Name} announced proxy endpoint '{c.Endpoint}', which is not ip:port.");
        if (!System.Net.IPAddress.TryParse(c.TunnelAddress, out _))
            throw DomainException.Validation($"Host {state.Name} announced tunnel address '{c.TunnelAddress}', which is no IP address.");
        return state.IngressEndpoint == c.Endpoint && state.IngressTunnelAddress == c.TunnelAddress
            ? []
            : [new HostIngressProxyAnnounced(c.HostId, c.Endpoint, c.TunnelAddress, c.At)];
    }

    public static IReadOnlyList<object> Decide(MarkHostAlive c, Host state) =>
        state is { Exists: true, State: HostState.Failed } ? [new HostRecovered(c.HostId, state.FailedAt ?? c.At, c.At)] : [];

    public static IReadOnlyList<object> Decide(UncordonHost c, Host state)
    {
        if (c.By.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can uncordon hosts.");
        if (!state.Exists) throw DomainException.NotFound("Host", c.HostId);
        return state.State switch
        {
            // Uncordoning a draining host stops the drain; what already moved stays where it went.
            HostState.Cordoned or HostState.Draining => [new HostUncordoned(c.HostId, c.By.Actor, c.At)],
            HostState.Ready => [],
            _ => throw new DomainException(ErrorCode.Precondition, $"Host {state.Name} is FAILED: it becomes READY when it is heard of again."),
        };
    }
}

public static class WireGuardKey
{
    public static bool IsPublicKey(string? value)
    {
        if (value is not { Length: 44 }) return false;
        Span<byte> bytes = stackalloc byte[33];
        return Convert.TryFromBase64String(value, bytes, out var written) && written == 32;
    }
}
