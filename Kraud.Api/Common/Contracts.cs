using Kraud.Domain.Access;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Scheduling;
using Kraud.Domain.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Common;

// What slices ask of each other inside one transaction: a pod and the volumes it mounts, a host and what runs on it, an
// app and its parts commit together or not at all. Each contract is implemented by the slice that owns the stream and
// registered by its KraudSlice; callers get it injected and never see the owner's code. Everything else between slices
// goes by message (Messages.cs) or through read models (Kraud.Projections).

/// <summary>Pods, as other slices drive them (Pods implements it).</summary>
/// <summary>A pod as a command left it, with its stream's version after the command: what the API answers, without reading it back.</summary>
public sealed record DecidedPod(Pod Pod, int Version);

public interface IPods
{
    /// <summary>
    /// A pod command with what goes with it: on create the name claim, the volumes it mounts and its namespace's VPC
    /// overlay; the name claim given back once the pod stopped.
    /// </summary>
    Task<DecidedPod> RequestAsync(IDocumentSession session, IMessageContext context, PodCommand command, Principal by, int? expectedVersion = null);

    /// <summary>
    /// The path every pod command takes: load, check tenant and expected version, decide, append, and turn the change into
    /// host work (capacity, boot and stop commands through the outbox, scheduling).
    /// </summary>
    /// <param name="loaded">The pod as the caller already read it in this session, so it is not read twice.</param>
    /// <param name="hostCommands">Where a caller that decides for many pods at once collects their boot commands, to send one
    /// list per host when it is done (null: sent at once).</param>
    Task<Pod> ExecuteAsync(IDocumentSession session, IMessageContext context, PodCommand command, Principal by, int? expectedVersion = null,
        string? correlationId = null, Loaded<Pod>? loaded = null, HostCommandBatch? hostCommands = null);

    /// <summary>
    /// What booting these pods' microVMs will read (pull secrets, volumes, secrets in their environment), read for all of
    /// them in one round trip (see <see cref="ReadAhead"/>): a caller that decides for many pods in one session calls it first.
    /// </summary>
    Task ReadAheadForBootsAsync(IQuerySession session, IReadOnlyCollection<Pod> pods);

    /// <summary>
    /// What a create reads in its transaction (its pod's stream for writing, its namespace's VPC view, the confirmation
    /// of the image's registry credential), read in one round trip before the create confirms and decides.
    /// </summary>
    Task ReadAheadForCreateAsync(IDocumentSession session, CreatePod create);
}

/// <summary>Volumes, as pods, hosts and apps need them (Volumes implements it).</summary>
public interface IVolumes
{
    /// <summary>The path every volume command takes (as <see cref="IPods.ExecuteAsync"/> for pods).</summary>
    Task<Volume> ExecuteAsync(IDocumentSession session, IMessageContext context, VolumeCommand command, Principal by, int? expectedVersion = null,
        Loaded<Volume>? loaded = null);

    /// <summary>A new volume with its name claim.</summary>
    Task CreateAsync(IDocumentSession session, IMessageContext context, CreateVolume create, Principal by);

    /// <summary>A new pod's mounts get the class of their volume; volumes of other tenants do not exist for it.</summary>
    Task<CreatePod> ResolveMountsAsync(IQuerySession session, CreatePod create);

    /// <summary>The volumes a new pod mounts record the attachment in the pod's own transaction.</summary>
    Task AttachNewPodAsync(IDocumentSession session, IMessageContext context, Pod pod, Principal by, DateTimeOffset at);

    /// <summary>A pod that stopped for good lets go of its volumes.</summary>
    Task ReleaseAsync(IDocumentSession session, IMessageContext context, Pod pod, Principal by, DateTimeOffset at);

    /// <summary>Where the pod's volumes let it run (the pod's own zone request included).</summary>
    Task<VolumeAffinity.Verdict> AffinityAsync(IQuerySession session, Pod pod);

    /// <summary>
    /// What a compute host needs to mount a pod's volumes in one microVM: where the replicas are, the wrapped data key, and
    /// for block exports the microVM's own access, granted on every replica in this transaction (with the boot command).
    /// </summary>
    Task<IReadOnlyList<VolumeAttachmentSpec>> ForBootAsync(IDocumentSession session, IMessageContext context, Pod pod, PodInstance vm);

    /// <summary>A microVM that is gone (stopped, failed, lost) loses its access to the pod's volumes' exports.</summary>
    Task RevokeAccessAsync(IDocumentSession session, IMessageContext context, Pod pod, PodInstance vm);

    /// <summary>Names what <see cref="AffinityAsync"/> and <see cref="ForBootAsync"/> read for these pods (see <see cref="IPods.ReadAheadForBootsAsync"/>).</summary>
    void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods);
}

/// <summary>IPAM within one transaction (Network implements it).</summary>
public interface IAddresses
{
    /// <summary>The tenant's VPC, started with a /48 no other VPC holds when it has none.</summary>
    Task EnsureVpcAsync(IDocumentSession session, IMessageContext context, Guid tenantId, Principal by, DateTimeOffset at);

    /// <summary>The namespace's overlay; a new namespace gets a /23 no other namespace holds.</summary>
    Task EnsureNamespaceAsync(IDocumentSession session, IMessageContext context, Guid tenantId, string ns, Principal by, DateTimeOffset at);

    /// <summary>Names what <see cref="EnsureNamespaceAsync"/> reads for a tenant's create (see <see cref="IPods.ReadAheadForCreateAsync"/>).</summary>
    void ReadAheadForCreate(ReadAhead ahead, Guid tenantId);

    /// <summary>How many more microVMs the namespace's /23 can take.</summary>
    Task<int> FreeAddressesAsync(IDocumentSession session, IMessageContext context, Guid tenantId, string ns, Principal by, DateTimeOffset at);

    /// <summary>A pod decision's addresses: leases for new microVMs (events for the pod's stream), releases for gone ones.</summary>
    Task<IReadOnlyList<object>> DecideAsync(IDocumentSession session, IMessageContext context, Pod before, Pod after, Principal by, DateTimeOffset at);
}

/// <summary>
/// A booting microVM's environment, secret references resolved: Apps resolves its generated secrets, Kubernetes its Secrets;
/// Pods applies every implementation in turn, each to what the one before returned.
/// </summary>
public interface IPodEnvironment
{
    Task<IReadOnlyDictionary<string, string>> ResolveAsync(IQuerySession session, Pod pod);

    /// <summary>Names what <see cref="ResolveAsync"/> reads for these pods (see <see cref="IPods.ReadAheadForBootsAsync"/>).</summary>
    void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods);
}

/// <summary>The firewall of every DIRECT ingress that exposes a pod, for a microVM of it that boots (Ingresses implements it).</summary>
public interface IBootFirewall
{
    Task SendForBootAsync(IDocumentSession session, IMessageContext context, Guid podId, Guid hostId, string hostName, Guid vmId);
}

/// <summary>
/// What INGRESS hosts' proxies serve, sent with every mesh change (the Network slice's mesh batch calls it, so routes and
/// peers change together; Ingresses implements it).
/// </summary>
public interface IIngressConfigPush
{
    Task SendAsync(IDocumentSession session, IMessageContext context, IReadOnlyList<Kraud.Projections.Fleet.HostView> hosts, DateTimeOffset now);
}

/// <summary>Ingresses, as apps create, re-route and delete theirs (Ingresses implements it).</summary>
public interface IIngresses
{
    Task CreateAsync(IDocumentSession session, IMessageContext context, CreateIngress command);

    Task SetRoutesAsync(IDocumentSession session, IMessageContext context, SetIngressRoutes command);

    Task DeleteAsync(IDocumentSession session, IMessageContext context, DeleteIngress command);
}

/// <summary>A pod's image, as Pods needs it (Images implements it).</summary>
public interface IPodImages
{
    /// <summary>
    /// createPod's image reference resolved to the digest every microVM of the pod runs (VALIDATION for an image the
    /// registry does not have, PRECONDITION for a registry that cannot be reached), with the tenant's credential for its
    /// registry as this node last read it.
    /// </summary>
    Task<CreatePod> ResolveAsync(IDocumentSession session, CreatePod create, CancellationToken ct);

    /// <summary>
    /// In the create's transaction: the credential <see cref="ResolveAsync"/> used is still the tenant's (else the image is
    /// resolved again with the current one), and the pull secret sealed for the host runtimes is stored in this session.
    /// </summary>
    Task<CreatePod> ConfirmAsync(IDocumentSession session, CreatePod create, CancellationToken ct);

    /// <summary>Names what <see cref="ConfirmAsync"/> reads for this create (see <see cref="IPods.ReadAheadForCreateAsync"/>).</summary>
    void ReadAheadForCreate(ReadAhead ahead, IDocumentSession session, CreatePod create);

    /// <summary>What a boot command carries of the pod's image: the digest to pull, and the pull credential.</summary>
    Task<OciImage?> ForBootAsync(IQuerySession session, Pod pod);

    /// <summary>Names what <see cref="ForBootAsync"/> reads for these pods (see <see cref="IPods.ReadAheadForBootsAsync"/>).</summary>
    void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods);

    /// <summary>A pod that is gone lets go of its pull credential.</summary>
    void Release(IDocumentSession session, Pod pod);
}

/// <summary>One stored line of a workload, as podLogs, the log stream and `docker logs` return it.</summary>
public sealed record LogLineDto(long Id, DateTime At, Guid MicroVmId, int Replica, string Stream, string Line);

/// <summary>The workload lines host runtimes shipped, read by tenant and pod (Logs implements it).</summary>
public interface IWorkloadLogs
{
    /// <param name="tail">The last this many lines; null: the first ones up to the reader's cap.</param>
    /// <param name="afterId">Only lines stored after this one (a follower's position).</param>
    Task<IReadOnlyList<LogLineDto>> ReadAsync(Guid tenant, Guid pod, int? replica, int? tail, DateTime? since, long afterId, CancellationToken ct);

    /// <summary>The position of the pod's newest line (0: none yet).</summary>
    Task<long> LastIdAsync(Guid tenant, Guid pod, CancellationToken ct);
}

/// <summary>The control-plane nodes as <c>/health</c> names them (Health implements it).</summary>
public interface IClusterNodes
{
    /// <summary>This node's name.</summary>
    string Self { get; }

    /// <summary>The name of the node that runs the async projections; null while none does (a handover).</summary>
    Task<string?> ProjectionsHolderAsync(CancellationToken ct);
}
