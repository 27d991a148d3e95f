namespace Kraud.Domain.HostProtocol;

/// <summary>
/// The wire contract between the control plane and host runtimes. Commands go to one host's queue; reports go to the
/// control plane's queue. Both travel as Wolverine messages over PostgreSQL queues, so in-process and remote hosts
/// behave the same.
/// </summary>
public static class Queues
{
    public const string ControlPlane = "kraud_control";

    /// <summary>
    /// Small reports about a host itself (<see cref="IHostStateReport"/>: heartbeats, peer-set acknowledgements) have a queue
    /// of their own: behind a burst of pod and volume reports, heartbeats would arrive late and make live hosts look dead.
    /// </summary>
    public const string HostState = "kraud_host_state";
}

/// <param name="Oci">The resolved image to pull and run (null: the pod names an image nobody resolved, and the guest runs its command
/// in Kraud's own initramfs).</param>
public sealed record MicroVmSpec(
    Guid VmId, Guid PodId, Guid TenantId, int Replica, int Generation, string Image, IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env, int Cpu, int MemoryMiB, int EphemeralGiB, bool Confidential,
    IReadOnlyList<VolumeAttachmentSpec>? Volumes = null, string? Ip6 = null, string? Ip4 = null, OciImage? Oci = null)
{
    public IReadOnlyList<VolumeAttachmentSpec> Attachments => Volumes ?? [];
}

/// <summary>
/// The image a microVM runs, pinned by its manifest digest. <paramref name="Credential"/> is the tenant's registry
/// credential sealed for the fleet's host runtimes (<see cref="SealedSecret"/>); null for public images.
/// </summary>
public sealed record OciImage(string Registry, string Repository, string Digest, SealedRegistryCredential? Credential = null);

/// <summary>A registry credential on its way to a host runtime: the username in clear, the password sealed.</summary>
public sealed record SealedRegistryCredential(string Registry, string Username, SealedSecret Password);

/// <summary>
/// A secret sealed to a public key only host runtimes can open (X25519 + HKDF-SHA256 + AES-256-GCM): the sender's
/// ephemeral public key, the nonce and the ciphertext with its tag, each base64; <paramref name="RecipientKeyId"/> names
/// the recipient key.
/// </summary>
public sealed record SealedSecret(string RecipientKeyId, string EphemeralPublicKey, string Nonce, string Ciphertext);

/// <summary>
/// A data key as it travels and rests: encrypted (AES-256-GCM) under the fleet's key-encryption key, which only host
/// runtimes hold. <paramref name="Sealed"/> is base64 of nonce, ciphertext and tag.
/// </summary>
public sealed record WrappedKey(Guid KeyId, string KekId, string Sealed);

/// <summary>A volume a microVM mounts, with what its host needs to reach and decrypt it (no key: the volume has none yet, and the VM cannot boot).</summary>
/// <param name="Exports">The healthy replicas' block exports (real storage hosts): QEMU attaches a quorum of them under its LUKS
/// layer. Null or empty for simulated storage.</param>
/// <param name="Access">The identity and pre-shared key this microVM's QEMU presents to every export.</param>
/// <param name="VoteThreshold">How many replicas must take a write before the guest is told it is done.</param>
/// <param name="FileServer">A GFS volume served by its file server: the server's VPC address, which the guest mounts over NFSv4 (no
/// disk, no key). Null for a volume the microVM attaches as a disk.</param>
/// <param name="Replicas">How many copies the volume keeps (its class's). A guest booted while fewer are healthy takes a stand-in
/// for each one missing into its quorum, so that a copy resynced in later counts in every write's vote (0: the exports only).</param>
public sealed record VolumeAttachmentSpec(Guid VolumeId, string Class, string MountPath, bool ReadOnly, int SizeGiB, WrappedKey? Key,
    IReadOnlyList<string> ReplicaHosts, IReadOnlyList<ExportEndpoint>? Exports = null, ExportAccess? Access = null, int VoteThreshold = 0,
    string? FileServer = null, int Replicas = 0);

/// <summary>One replica's NBD export, as a compute host reaches it.</summary>
public sealed record ExportEndpoint(Guid HostId, string HostName, string Address, int Port);

/// <summary>
/// A client's right to a volume's exports: its TLS-PSK identity (also the name of its export) and the key, hex. Not a data
/// key: it opens ciphertext only.
/// </summary>
public sealed record ExportAccess(string Identity, string Psk);

/// <summary>Where a real storage host serves a replica.</summary>
public sealed record ReplicaExport(string Address, int Port);

/// <summary>Admit this client to the host's replica of the volume (a storage host adds its key and an export named after it).</summary>
public sealed record GrantExportAccess(Guid HostId, Guid VolumeId, ExportAccess Access);

/// <summary>Forget the client's key and drop its connections to the host's replica of the volume.</summary>
public sealed record RevokeExportAccess(Guid HostId, Guid VolumeId, string Identity);

/// <summary>
/// To a compute host (it holds the key-encryption key): generate the volume's data key and write one LUKS header through
/// every replica's export, then report the key wrapped (<see cref="VolumeFormatted"/>).
/// </summary>
public sealed record FormatVolume(Guid HostId, Guid VolumeId, IReadOnlyList<ExportEndpoint> Exports, ExportAccess Access);

/// <summary>
/// To a compute host: fill <paramref name="Target"/> from <paramref name="Sources"/> (the healthy replicas) and check that it
/// then holds what they hold. With <paramref name="VmId"/> the running microVM's QEMU does it while the guest writes, and
/// takes the new replica into its quorum; without, a storage daemon of the host's does it.
/// </summary>
public sealed record ResyncVolumeReplica(Guid HostId, Guid VolumeId, Guid? VmId, ExportEndpoint Target, IReadOnlyList<ExportEndpoint> Sources,
    ExportAccess Access, int VoteThreshold);

/// <summary>
/// Set up this host's replica of a volume, encrypted with the volume's data key. Without <paramref name="Key"/> the host
/// runtime generates the data key and reports it wrapped; otherwise it unwraps the given one and copies the data from
/// <paramref name="Peers"/>.
/// </summary>
public sealed record ProvisionVolumeReplica(Guid HostId, Guid VolumeId, Guid TenantId, string Class, int SizeGiB, WrappedKey? Key,
    IReadOnlyList<string> Peers);

/// <summary>Destroy this host's copy of the volume's data key and its data (crypto-erase).</summary>
public sealed record DestroyVolumeReplica(Guid HostId, Guid VolumeId);

public sealed record BootMicroVm(Guid HostId, MicroVmSpec Spec);

/// <summary>
/// A host command or report that travels in a list with others: one envelope (and one queue row, one transaction on each
/// side) for a batch instead of one each. Each keeps the correlation id and the trace (W3C traceparent) of its own pod,
/// which the list's one envelope cannot carry.
/// </summary>
public sealed record Batched<T>(T Message, string? CorrelationId, string? TraceParent);

/// <summary>
/// Several microVMs for one host to boot: what one scheduler batch placed there. The host boots them side by side and
/// answers those that are up at once in one <see cref="MicroVmBootReports"/>.
/// </summary>
public sealed record BootMicroVms(Guid HostId, IReadOnlyList<Batched<BootMicroVm>> Boots);

public sealed record StopMicroVm(Guid HostId, Guid VmId, Guid PodId);

/// <summary>
/// To a host: the control plane has not heard how these microVMs' boots ended (reports lost on the way): tell it again. A
/// boot still under way, or a VM the host knows nothing of, has nothing to tell.
/// </summary>
public sealed record ReportMicroVms(Guid HostId, IReadOnlyList<Guid> VmIds);

/// <summary>Everything a host runtime tells the control plane about its work implements this, so one routing rule sends them all.</summary>
public interface IHostReport
{
    Guid HostId { get; }
}

/// <summary>What a host runtime says about the host itself; these travel on <see cref="Queues.HostState"/>.</summary>
public interface IHostStateReport
{
    Guid HostId { get; }
}

public interface IMicroVmReport : IHostReport
{
    Guid VmId { get; }
    Guid PodId { get; }
}

public sealed record MicroVmBootStarted(Guid HostId, Guid VmId, Guid PodId) : IMicroVmReport;

/// <param name="Attestation">A confidential guest's attestation report from the host's SEV-SNP firmware (null for ordinary guests).</param>
/// <param name="EncryptedEphemeralGiB">The size of the ephemeral disk the host runtime set up encrypted (0: none).</param>
/// <param name="ImageDigest">The manifest digest the host verified and booted (null when the VM ran no image).</param>
/// <param name="DownloadedBytes">What the host downloaded for the image (0: every layer was in its cache).</param>
public sealed record MicroVmBooted(Guid HostId, Guid VmId, Guid PodId, double BootMs, Confidential.AttestationReport? Attestation = null,
    int EncryptedEphemeralGiB = 0, string? ImageDigest = null, long DownloadedBytes = 0) : IMicroVmReport;

/// <summary>The microVM's workload exited with this code at that time, and the microVM powered off.</summary>
/// <param name="EphemeralErased">The VM's ephemeral data key was destroyed with it.</param>
public sealed record MicroVmExited(Guid HostId, Guid VmId, Guid PodId, int ExitCode, DateTimeOffset ExitedAt, bool EphemeralErased = false)
    : IMicroVmReport;

public sealed record MicroVmFailed(Guid HostId, Guid VmId, Guid PodId, string Reason) : IMicroVmReport;

/// <summary>
/// How the boots of one <see cref="BootMicroVms"/> ended, those over within the host's BOOTING window together: the control
/// plane records them in one transaction. A boot that takes longer reports BOOTING and then its end on its own.
/// </summary>
public sealed record MicroVmBootReports(Guid HostId, IReadOnlyList<Batched<MicroVmBooted>> Booted, IReadOnlyList<Batched<MicroVmFailed>> Failed)
    : IHostReport;

/// <param name="EphemeralErased">The VM's ephemeral data key was destroyed with it.</param>
public sealed record MicroVmStopped(Guid HostId, Guid VmId, Guid PodId, bool EphemeralErased = false) : IMicroVmReport;

public interface IVolumeReport : IHostReport
{
    Guid VolumeId { get; }
}

/// <param name="NewKey">The data key this replica generated, wrapped; null when it was given one.</param>
/// <param name="Export">A real storage host's export of the (empty) replica; null from simulated storage.</param>
public sealed record ReplicaProvisioned(Guid HostId, Guid VolumeId, bool Encrypted, WrappedKey? NewKey, ReplicaExport? Export = null) : IVolumeReport;

/// <summary>The compute host formatted the volume with the data key it generated (wrapped here).</summary>
public sealed record VolumeFormatted(Guid HostId, Guid VolumeId, WrappedKey Key) : IVolumeReport;

public sealed record ReplicaResyncProgress(Guid HostId, Guid VolumeId, Guid ReplicaHostId, long SyncedBytes, long TotalBytes, double BytesPerSecond)
    : IVolumeReport;

/// <param name="PauseMs">How long the guest was paused while its quorum took the replica in (0 without a guest).</param>
public sealed record ReplicaResynced(Guid HostId, Guid VolumeId, Guid ReplicaHostId, long Bytes, double Seconds, double PauseMs) : IVolumeReport;

/// <summary>Formatting (no replica) or a resync failed on this compute host.</summary>
public sealed record VolumeWorkFailedReport(Guid HostId, Guid VolumeId, Guid? ReplicaHostId, string Reason) : IVolumeReport;

/// <summary>
/// To a compute host: read every replica through a quorum whose reads vote, and name each one the majority outvotes (a scrub).
/// With <paramref name="VmId"/> the running microVM's QEMU does it beside its guest, which keeps writing: a difference counts
/// only when rereads of the block still find it. Without, a storage daemon of the host does it.
/// </summary>
public sealed record ScrubVolumeReplicas(Guid HostId, Guid VolumeId, Guid? VmId, IReadOnlyList<ExportEndpoint> Replicas, ExportAccess Access);

/// <summary>Where one replica held other bytes than the majority, or failed an I/O (bytes into the replica).</summary>
public sealed record ReplicaFault(Guid ReplicaHostId, long Offset, long Length, string Detail);

/// <param name="Unresolved">A difference no majority decides (two copies, or three versions of a block); null when none.</param>
public sealed record VolumeScrubReport(Guid HostId, Guid VolumeId, long Bytes, double Seconds, IReadOnlyList<ReplicaFault> Bad, string? Unresolved)
    : IVolumeReport;

/// <summary>
/// A running microVM's quorum on this compute host reported a replica bad (QEMU's QUORUM_REPORT_BAD: a read, write or
/// flush that failed there while the others served it); the host runtime took it out of that quorum.
/// </summary>
public sealed record ReplicaReportedBad(Guid HostId, Guid VolumeId, Guid VmId, ReplicaFault Fault) : IVolumeReport;

public sealed record ReplicaProvisionFailed(Guid HostId, Guid VolumeId, string Reason) : IVolumeReport;

public sealed record ReplicaDestroyed(Guid HostId, Guid VolumeId) : IVolumeReport;

/// <summary>
/// Every few seconds: this host is alive and runs exactly these microVMs. The control plane compares them with what
/// should run there (reconciliation) and declares the host failed when heartbeats stop.
/// </summary>
/// <param name="VolumeReplicas">The volumes whose replica this host holds healthy (storage hosts); null from runtimes that keep none.</param>
public sealed record HostHeartbeat(Guid HostId, IReadOnlyList<Guid> RunningVms, DateTimeOffset SentAt, IReadOnlyList<Guid>? VolumeReplicas = null)
    : IHostStateReport;

/// <summary>A host runtime came up: the control plane registers it if it does not know it yet.</summary>
/// <param name="Accelerator">KVM or TCG, as the runtime's probe (or its configuration) chose for its guests; null without a hypervisor.</param>
/// <param name="AcceleratorReason">Why that accelerator: what the probe saw, or that the configuration forced it.</param>
/// <param name="IngressEndpoint">An INGRESS host's proxy (ip:port), when its network is real.</param>
/// <param name="IngressTunnelAddress">The address that proxy reaches the VPCs from, through WireGuard.</param>
/// <param name="SealingKey">The public key secrets for this host are sealed to (registry credentials); derived from the fleet's
/// key-encryption key, so every host runtime of the fleet has the same one.</param>
public sealed record HostAnnounced(
    Guid HostId, string Name, string Zone, string Datacenter, string Rack, string Role, int Cpu, int MemoryMiB, int NvmeGiB, bool SevSnp,
    string Driver, string? WireGuardPublicKey = null, string? WireGuardEndpoint = null, string? Accelerator = null,
    string? AcceleratorReason = null, SealingKey? SealingKey = null, string? IngressEndpoint = null, string? IngressTunnelAddress = null) : IHostReport;

/// <summary>A public X25519 key (base64) and its id.</summary>
public sealed record SealingKey(string KeyId, string PublicKey);

/// <summary>One peer of a host's WireGuard interface, as the control plane hands it to the host runtime.</summary>
public sealed record WireGuardPeer(Guid HostId, string HostName, string PublicKey, string? Endpoint, IReadOnlyList<string> AllowedIps);

/// <summary>The host's new peer set; a host applies a revision only if it is newer than the one it has.</summary>
public sealed record ApplyPeerSet(Guid HostId, long Revision, IReadOnlyList<WireGuardPeer> Peers);

/// <summary>The host rendered and applied this revision of its peer set.</summary>
public sealed record PeerSetApplied(Guid HostId, long Revision) : IHostStateReport;

/// <summary>A namespace of a tenant's VPC and its overlay prefixes.</summary>
public sealed record NamespaceOverlay(string Name, string Ipv4Cidr, string Ipv6Cidr);

/// <summary>One tenant as a host's data plane needs it: its prefixes (which addresses may talk to each other) and its service discovery table.</summary>
public sealed record TenantNetwork(Guid TenantId, string Ipv6Prefix, IReadOnlyList<NamespaceOverlay> Namespaces, IReadOnlyList<Network.DnsRecord> Records);

/// <summary>
/// The tenants whose microVMs this host runs, with their service discovery tables: the host's resolver answers their
/// guests from it and its firewall lets only addresses of one tenant talk. A host applies a revision only if it is newer.
/// </summary>
public sealed record ApplyServiceDiscovery(Guid HostId, long Revision, IReadOnlyList<TenantNetwork> Tenants);

/// <summary>A route of an ingress as its proxy serves it: Host and path prefix to the VPC addresses (ip:port) of the pod's running microVMs.</summary>
public sealed record IngressSiteRoute(string Host, string Path, IReadOnlyList<string> Backends);

/// <summary>A BASIC user of an AUTHENTICATED ingress: the password only as PBKDF2-SHA256 (base64 of salt, iterations, hash).</summary>
public sealed record IngressBasicUser(string Username, string PasswordHash);

/// <summary>Who may pass: method OIDC (issuer, audience, groups), SAML (refused by the proxy) or BASIC (users).</summary>
public sealed record IngressSiteAuth(string Method, string? Issuer, string? Audience, IReadOnlyList<string> AllowedGroups, IReadOnlyList<IngressBasicUser> Users);

/// <summary>One ingress as an ingress host serves it.</summary>
public sealed record IngressSite(Guid IngressId, Guid TenantId, string Name, string Kind, IReadOnlyList<string> Hostnames, IngressSiteAuth? Auth,
    IReadOnlyList<IngressSiteRoute> Routes);

/// <summary>A certificate and its key (PEM) from Kraud's ingress CA, for these names.</summary>
public sealed record IngressCertificate(IReadOnlyList<string> Names, string CertificatePem, string KeyPem);

/// <summary>What an INGRESS host's proxy serves now (hot-reloaded); a host applies a revision only if it is newer.</summary>
public sealed record ApplyIngressConfig(Guid HostId, long Revision, IReadOnlyList<IngressSite> Sites, IReadOnlyList<IngressCertificate> Certificates);

/// <summary>One request an ingress proxy answered.</summary>
public sealed record IngressRequestLog(Guid IngressId, DateTimeOffset At, string Host, string Path, int Status, string? Upstream, double DurationMs);

/// <summary>Requests an ingress host served since its last report (sent about once a second while there are any).</summary>
public sealed record IngressRequestsServed(Guid HostId, IReadOnlyList<IngressRequestLog> Requests) : IHostReport;

public sealed record FirewallRuleSpec(string Action, string Protocol, int Port, string Source);

/// <summary>
/// A DIRECT ingress exposes this microVM: install these rules in its configuration (an empty list removes the
/// exposure). Traffic to the public address and port reaches the microVM's port only where a rule allows it.
/// </summary>
public sealed record ApplyFirewall(Guid HostId, Guid VmId, Guid PodId, Guid IngressId, string PublicAddress, string Protocol, int PublicPort, int VmPort,
    IReadOnlyList<FirewallRuleSpec> Rules);
