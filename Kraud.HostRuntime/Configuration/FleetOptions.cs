using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.HostRuntime.Configuration;

/// <summary>The "Fleet" configuration section: the hosts this process runs a host runtime for.</summary>
public sealed class FleetOptions
{
    public const string Section = "Fleet";

    public string Datacenter { get; set; } = "FSN1-DC2";

    /// <summary>Run the configured hosts' runtimes inside the API process (the default simulated fleet); false when every
    /// host runs its own Kraud.HostRuntime process.</summary>
    public bool InProcess { get; set; } = true;

    /// <summary>Milliseconds a simulated guest takes to boot.</summary>
    public int SimulatedBootDelayMs { get; set; } = 200;

    /// <summary>Seconds between queue polls; LISTEN/NOTIFY wakes listeners at once, so this only bounds a missed wake-up.</summary>
    public int QueuePollingSeconds { get; set; } = 5;

    /// <summary>How often every host runtime reports that it lives and what it runs.</summary>
    public int HeartbeatIntervalMs { get; set; } = 2000;

    /// <summary>A host not heard of for this long is declared FAILED and its pods move.</summary>
    public int HeartbeatTimeoutSeconds { get; set; } = 10;

    /// <summary>
    /// Keep every zone able to absorb the loss of two hosts (the product table's N+2). Off only for lab fleets too small
    /// for it (fewer than three compute hosts in a zone).
    /// </summary>
    public bool EnforceNPlus2 { get; set; } = true;

    public List<HostDefinition> Hosts { get; set; } = [];

    /// <summary>How hosts whose driver is qemu-microvm run their guests.</summary>
    public QemuOptions Qemu { get; set; } = new();
}

public sealed class HostDefinition
{
    public string Name { get; set; } = "";
    public string Zone { get; set; } = "";
    public string? Datacenter { get; set; }
    public string Rack { get; set; } = "";
    public string Role { get; set; } = "Compute";
    public int Cpu { get; set; }
    public int MemoryMiB { get; set; }
    public int NvmeGiB { get; set; }
    public bool SevSnp { get; set; }
    /// <summary>"simulated" (the default: no hypervisor) or "qemu-microvm" (real guests under QEMU, see Fleet:Qemu).</summary>
    public string Driver { get; set; } = "simulated";
    /// <summary>Where other hosts reach this host's WireGuard interface (host:port); the host's name and port 51820 by default.</summary>
    public string? WireGuardEndpoint { get; set; }
}
