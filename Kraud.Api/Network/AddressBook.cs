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
/// IPAM within one transaction: tenant VPCs, namespace overlays and microVM leases. VPC appends carry the stream's
/// version and every prefix and address is an <see cref="AddressClaim"/> inserted in the same transaction, so two
/// transactions that pick the same thing cannot both commit; the loser is retried on fresh state. One book per
/// session: a handler that decides for many pods (the scheduler's batch) sees its own earlier leases.
/// </summary>
public sealed class AddressBook
{
    private const int MaxUlaAttempts = 64;
    private static readonly ConditionalWeakTable<IDocumentSession, AddressBook> Books = new();

    private readonly IDocumentSession _session;
    private readonly Dictionary<Guid, (Vpc Vpc, long? Version)> _vpcs = [];
    private readonly Dictionary<string, HashSet<int>> _taken = [];

    private AddressBook(IDocumentSession session) => _session = session;

    public static AddressBook For(IDocumentSession session) => Books.GetValue(session, s => new AddressBook(s));

    /// <summary>The tenant's VPC as this transaction sees it; started with a /48 no other VPC holds when it has none.</summary>
    public async Task<Vpc> EnsureVpcAsync(IMessageContext context, Guid tenantId, Principal by, DateTimeOffset at)
    {
        var id = Vpc.IdFor(tenantId);
        if (_vpcs.TryGetValue(id, out var known)) return known.Vpc;
        var stream = await _session.Events.FetchStreamAsync(id);
        if (stream.Count > 0)
        {
            var vpc = Fold.Events<Vpc>(stream.Select(e => e.Data));
            _vpcs[id] = (vpc, stream[^1].Version);
            return vpc;
        }
        for (var attempt = 0; attempt < MaxUlaAttempts; attempt++)
        {
            var prefix = Ipam.Ipv6PrefixFor(tenantId, attempt);
            if (await _session.LoadAsync<AddressClaim>(AddressClaim.Ula(prefix)) is not null) continue;
            var events = VpcDecider.Decide(new CreateVpc(tenantId, prefix, at), Vpc.Initial);
            _session.Insert(new AddressClaim { Id = AddressClaim.Ula(prefix), OwnerId = id });
            _session.Events.StartStream(id, events).Stamp(AuditStamp.For(context, by, tenantId, nameof(CreateVpc), scope: id.ToString()));
            var vpc = Fold.Events<Vpc>(events);
            _vpcs[id] = (vpc, null);
            return vpc;
        }
        throw new InvalidOperationException($"No free IPv6 ULA prefix after {MaxUlaAttempts} attempts.");
    }

    /// <summary>The namespace's overlay; a new namespace gets a /23 no other namespace holds.</summary>
    public async Task<(Vpc Vpc, VpcNamespace Namespace)> EnsureNamespaceAsync(IMessageContext context, Guid tenantId, string ns, Principal by,
        DateTimeOffset at)
    {
        var vpc = await EnsureVpcAsync(context, tenantId, by, at);
        if (vpc.Namespaces.TryGetValue(ns, out var existing)) return (vpc, existing);

        var block = await FreeBlockAsync(Ipam.Ipv4BlockStart(tenantId, ns));
        var events = VpcDecider.Decide(new AddVpcNamespace(tenantId, ns, block, at), vpc);
        var stamp = AuditStamp.For(context, by, tenantId, nameof(AddVpcNamespace), scope: $"{vpc.Id}/{ns}");
        var version = _vpcs[vpc.Id].Version;
        // A VPC started in this transaction has no version to expect yet; its StartStream takes these events too.
        (version is { } v ? _session.Events.Append(vpc.Id, v + events.Count, events) : _session.Events.Append(vpc.Id, events)).Stamp(stamp);
        _session.Insert(new AddressClaim { Id = AddressClaim.Block(Ipam.Ipv4Block(block)), OwnerId = vpc.Id });
        var after = events.Aggregate(vpc, (s, e) => s.Evolve(e));
        _vpcs[vpc.Id] = (after, version is { } w ? w + events.Count : null);
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
