namespace Kraud.HostRuntime.Configuration;

/// <summary>The "Fleet" configuration section: the hosts this process runs a host runtime for.</summary>
public sealed class FleetOptions
{
    public const string Section = "Fleet";

    public string Datacenter { get; set; } = "FSN1-DC2";

    /// <summary>Milliseconds a simulated guest takes to boot.</summary>
    public int SimulatedBootDelayMs { get; set; } = 200;

    /// <summary>Seconds between queue polls; LISTEN/NOTIFY wakes listeners at once, so this only bounds a missed wake-up.</summary>
    public int QueuePollingSeconds { get; set; } = 5;

    public List<HostDefinition> Hosts { get; set; } = [];
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
    public string Driver { get; set; } = "simulated";
}
