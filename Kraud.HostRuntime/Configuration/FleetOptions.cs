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

    /// <summary>Milliseconds a replacement volume replica takes to copy its data from the healthy ones.</summary>
    public int SimulatedResyncDelayMs { get; set; } = 200;

    /// <summary>
    /// The fleet's key-encryption key file (made at first start, mode 0600); every host runtime of a fleet must use the
    /// same one. Default: "kek" in Kraud's state directory.
    /// </summary>
    public string? KeyEncryptionKeyFile { get; set; }

    /// <summary>Seconds between queue polls; LISTEN/NOTIFY wakes listeners at once, so this only bounds a missed wake-up.</summary>
    public int QueuePollingSeconds { get; set; } = 5;

    /// <summary>How often every host runtime reports that it lives and what it runs.</summary>
    public int HeartbeatIntervalMs { get; set; } = 2000;

    /// <summary>A host not heard of for this long is declared FAILED and its pods move.</summary>
    public int HeartbeatTimeoutSeconds { get; set; } = 10;

    /// <summary>
    /// Seconds the control plane gives a storage host to answer the command to set up a replica before it sends the
    /// (idempotent) command again; after <see cref="ReplicaAnswerAttempts"/> unanswered ones the replica fails and is
    /// placed on another host. A live host that never handled its command would otherwise keep the volume PROVISIONING.
    /// </summary>
    public int ReplicaAnswerSeconds { get; set; } = 30;

    /// <summary>
    /// Hours between two scrubs of a volume on block exports (every replica read and compared): a guest reads one replica
    /// and compares nothing, so silent rot is found by this, or by an admin's scrubVolume. 0 turns the periodic scrub off.
    /// </summary>
    public double VolumeScrubHours { get; set; } = 7 * 24;

    /// <summary>Seconds between two looks of the scrub round for volumes whose scrub is due.</summary>
    public int VolumeScrubRoundSeconds { get; set; } = 600;

    /// <summary>
    /// How many scrubs the round lets a storage host take part in at once (0: no bound). Each reads the host's replica whole,
    /// at up to Fleet:Qemu:ScrubBytesPerSecond; the due volumes beyond the bound wait for a later round. A scrub an admin or
    /// operator asks for (scrubVolume) is not held back, but holds its hosts' share.
    /// </summary>
    public int VolumeScrubsPerStorageHost { get; set; } = 1;

    /// <summary>How many times a replica's set-up is sent (the first time included) before the replica fails for want of an answer.</summary>
    public int ReplicaAnswerAttempts { get; set; } = 3;

    /// <summary>
    /// Keep every zone able to absorb the loss of two hosts (the product table's N+2). Off only for lab fleets too small
    /// for it (fewer than three compute hosts in a zone).
    /// </summary>
    public bool EnforceNPlus2 { get; set; } = true;

    public List<HostDefinition> Hosts { get; set; } = [];

    /// <summary>
    /// "simulated" (the default: WireGuard devices keep their configuration in memory, guests have no network device) or
    /// "wireguard": each host gets a network namespace on the underlay bridge with a wireguard-go device, taps for its
    /// guests, a resolver and nftables isolation (see <see cref="Network.HostNamespace"/>).
    /// </summary>
    public string Network { get; set; } = NetworkModes.Simulated;

    /// <summary>The Linux bridge every host namespace joins (made with <see cref="UnderlayCidr"/>'s first address when missing).</summary>
    public string Underlay { get; set; } = "kr-underlay";

    /// <summary>The underlay's addresses: .1 is the bridge's own (the machine), hosts take theirs from the rest.</summary>
    public string UnderlayCidr { get; set; } = "100.64.0.0/16";

    /// <summary>
    /// A PEM file of extra root certificates that ingress proxies trust when they fetch an OIDC issuer's metadata and
    /// keys (an identity provider behind a private CA); public CAs are trusted regardless.
    /// </summary>
    public string? IngressTrustedCaFile { get; set; }

    /// <summary>How hosts whose driver is qemu-microvm run their guests.</summary>
    public QemuOptions Qemu { get; set; } = new();

    /// <summary>Where simulated SEV-SNP hosts get their attestation keys certified.</summary>
    public SevSnpOptions SevSnp { get; set; } = new();
}

public sealed class SevSnpOptions
{
    /// <summary>
    /// The directory of the simulated AMD authority (test root and intermediate, made on first use). The control plane
    /// trusts its root unless Attestation:TrustedRootsFile names real roots; host runtime processes of one fleet share it.
    /// Default: &lt;Kraud:StateDirectory&gt;/sev-snp-test-authority.
    /// </summary>
    public string? AuthorityDirectory { get; set; }

    public const string DefaultDirectoryName = "sev-snp-test-authority";

    public string ResolvedAuthorityDirectory => Path.GetFullPath(AuthorityDirectory ?? Path.Combine(".kraud", DefaultDirectoryName));
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
    /// <summary>This host's address on the underlay (Fleet:Network = wireguard); default: derived from its name inside Fleet:UnderlayCidr.</summary>
    public string? UnderlayAddress { get; set; }
}

public static class NetworkModes
{
    public const string Simulated = "simulated";
    public const string WireGuard = "wireguard";
}
