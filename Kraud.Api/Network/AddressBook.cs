using System.Runtime.CompilerServices;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Network;
using Kraud.Projections.Network;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>
/// IPAM within one transaction: tenant VPCs, namespace overlays and microVM leases. A VPC is read from its inline view
/// first: a VPC and its namespaces are only ever added, never changed or removed, so what the view has is there for good,
/// and a pod in a namespace that exists (almost every create) costs one read instead of its VPC's stream fetched and
/// folded. Only a VPC or namespace the view lacks fetches the stream for writing (once per transaction; Marten checks its
/// version at commit), and every prefix and address is an <see cref="AddressClaim"/> inserted in the same transaction, so two
/// transactions that pick the same thing cannot both commit; the loser is retried on fresh state. One book per
/// session: a handler that decides for many pods (the scheduler's batch) sees its own earlier leases.
/// </summary>
public sealed class AddressBook
{
    private const int MaxUlaAttempts = 64;
    private static readonly ConditionalWeakTable<IDocumentSession, AddressBook> Books = new();

    private readonly IDocumentSession _session;
    /// <summary>Each VPC as this transaction sees it, and its stream once fetched for writing (appended to as it changes; null while read from its view).</summary>
    private readonly Dictionary<Guid, (Vpc Vpc, Loaded<Vpc>? Stream)> _vpcs = [];
    private readonly Dictionary<string, HashSet<int>> _taken = [];

    private AddressBook(IDocumentSession session) => _session = session;

    public static AddressBook For(IDocumentSession session) => Books.GetValue(session, s => new AddressBook(s));

    /// <summary>The tenant's VPC as this transaction sees it; started with a /48 no other VPC holds when it has none.</summary>
    public async Task<Vpc> EnsureVpcAsync(IMessageContext context, Guid tenantId, Principal by, DateTimeOffset at)
    {
        var id = Vpc.IdFor(tenantId);
        if (_vpcs.TryGetValue(id, out var known)) return known.Vpc;
        if (await ReadAhead.LoadAsync<VpcView, Guid>(_session, id) is { Vpc.Exists: true } view)
        {
            _vpcs[id] = (view.Vpc, null);
            return view.Vpc;
        }
        var stream = await Streams.FetchForWritingAsync<Vpc>(_session, id);
        if (stream.Version > 0)
        {
            _vpcs[id] = (stream.State, stream);
            return stream.State;
        }
        for (var attempt = 0; attempt < MaxUlaAttempts; attempt++)
        {
            var prefix = Ipam.Ipv6PrefixFor(tenantId, attempt);
            if (await _session.LoadAsync<AddressClaim>(AddressClaim.Ula(prefix)) is not null) continue;
            var events = VpcDecider.Decide(new CreateVpc(tenantId, prefix, at), Vpc.Initial);
            _session.Insert(new AddressClaim { Id = AddressClaim.Ula(prefix), OwnerId = id });
            Streams.Append(stream, events, AuditStamp.For(context, by, tenantId, nameof(CreateVpc), scope: id.ToString()));
            var vpc = Fold.Events<Vpc>(events);
            _vpcs[id] = (vpc, stream);
            return vpc;
        }
        throw new InvalidOperationException($"No free IPv6 ULA prefix after {MaxUlaAttempts} attempts.");
    }

    /// <summary>The tenant's VPC view, read with a create's other reads (<see cref="EnsureVpcAsync"/> answers from it).</summary>
    public static void ReadAheadForCreate(ReadAhead ahead, Guid tenantId) => ahead.LoadMany<VpcView, Guid>([Vpc.IdFor(tenantId)], v => v.Id);

    /// <summary>The namespace's overlay; a new namespace gets a /23 no other namespace holds.</summary>
    public async Task<(Vpc Vpc, VpcNamespace Namespace)> EnsureNamespaceAsync(IMessageContext context, Guid tenantId, string ns, Principal by,
        DateTimeOffset at)
    {
        var vpc = await EnsureVpcAsync(context, tenantId, by, at);
        if (vpc.Namespaces.TryGetValue(ns, out var existing)) return (vpc, existing);
        // Not in the view: the stream decides (another transaction may have added the namespace since the view was read).
        if (_vpcs[vpc.Id].Stream is null)
        {
            var fetched = await Streams.FetchForWritingAsync<Vpc>(_session, vpc.Id);
            vpc = fetched.State;
            _vpcs[vpc.Id] = (vpc, fetched);
            if (vpc.Namespaces.TryGetValue(ns, out existing)) return (vpc, existing);
        }

        var block = await FreeBlockAsync(Ipam.Ipv4BlockStart(tenantId, ns));
        var events = VpcDecider.Decide(new AddVpcNamespace(tenantId, ns, block, at), vpc);
        var stamp = AuditStamp.For(context, by, tenantId, nameof(AddVpcNamespace), scope: $"{vpc.Id}/{ns}");
        // A VPC started in this transaction: its stream starts with these events too.
        var stream = _vpcs[vpc.Id].Stream!;
        Streams.Append(stream, events, stamp);
        _session.Insert(new AddressClaim { Id = AddressClaim.Block(Ipam.Ipv4Block(block)), OwnerId = vpc.Id });
        var after = events.Aggregate(vpc, (s, e) => s.Evolve(e));
        _vpcs[vpc.Id] = (after, stream);
        return (after, after.Namespaces[ns]);
    }

    private async Task<int> FreeBlockAsync(int start)
    {
        const int window = 32;
        for (var probed = 0; probed < Ipam.Ipv4Blocks; probed += window)
        {
            var candidates = Enumerable.Range(probed, window).Select(i => (start + i) % Ipam.Ipv4Blocks).ToList();
            var ids = candidates.Select(i => AddressClaim.Block(Ipam.Ipv4Block(i))).ToArray();
            var taken = (await _session.LoadManyAsync<AddressClaim>(ids)).Select(c => c.Id).ToHashSet();
            foreach (var i in candidates)
                if (!taken.Contains(AddressClaim.Block(Ipam.Ipv4Block(i)))) return i;
        }
        throw new DomainException(ErrorCode.Unschedulable, "Every /23 of 10.0.0.0/8 belongs to a namespace: no overlay is left for a new one.");
    }

    /// <summary>How many more microVMs the namespace's /23 can take.</summary>
    public async Task<int> FreeAddressesAsync(IMessageContext context, Guid tenantId, string ns, Principal by, DateTimeOffset at)
    {
        var (_, overlay) = await EnsureNamespaceAsync(context, tenantId, ns, by, at);
        return Ipam.HostOffsets - (await TakenAsync(overlay.Ipv4Cidr)).Count;
    }

    /// <summary>Leases the lowest free address of the namespace to the microVM.</summary>
    public async Task<(string Ip6, string Ip4)> LeaseAsync(IMessageContext context, Guid tenantId, string ns, Guid vmId, Principal by, DateTimeOffset at)
    {
        var (vpc, overlay) = await EnsureNamespaceAsync(context, tenantId, ns, by, at);
        var taken = await TakenAsync(overlay.Ipv4Cidr);
        var offset = Ipam.FreeOffset(taken) ?? throw new DomainException(ErrorCode.Unschedulable,
            $"Namespace {ns} has no free address left in {overlay.Ipv4Cidr} ({Ipam.HostOffsets} microVMs at most).");
        taken.Add(offset);
        var addresses = vpc.Addresses(overlay, offset);
        _session.Insert(new AddressClaim { Id = AddressClaim.Lease(addresses.Ip4), OwnerId = vmId, Pool = overlay.Ipv4Cidr, Offset = offset });
        return addresses;
    }

    /// <summary>
    /// The microVM is gone: its address is free again for the next transaction. It stays taken in this one, so that a
    /// delete and an insert of one claim never meet in a single commit.
    /// </summary>
    public void Release(string ip4) => _session.Delete<AddressClaim>(AddressClaim.Lease(ip4));

    private async Task<HashSet<int>> TakenAsync(string pool)
    {
        if (_taken.TryGetValue(pool, out var taken)) return taken;
        var offsets = await _session.Query<AddressClaim>().Where(c => c.Pool == pool).Select(c => c.Offset).ToListAsync();
        return _taken[pool] = [.. offsets];
    }
}
