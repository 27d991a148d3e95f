using Kraud.Api.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.Ingresses;
using Marten;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Ingresses;

/// <summary>One numbered slot of an INGRESS host, taken by one replica of one ingress. The id is host and slot number.</summary>
public sealed class IngressSlotClaim : IContendedClaim
{
    public string Id { get; set; } = "";
    public Guid HostId { get; set; }
    public int Slot { get; set; }
    public Guid IngressId { get; set; }

    public static string For(Guid hostId, int slot) => $"{hostId:N}/{slot}";
}

/// <summary>
/// The replicas INGRESS hosts run, as claims on their numbered slots (one per core). Placing a replica inserts the claim
/// of the host's lowest free slot in the same transaction, so two placements that both saw a host's last free slot cannot
/// both commit: the key lets one through, and the other decides again on fresh state (or its caller gets CONFLICT).
/// </summary>
public sealed class IngressSlots
{
    private readonly IReadOnlyList<Host> hosts;
    private readonly Dictionary<Guid, List<IngressSlotClaim>> taken;

    private IngressSlots(IReadOnlyList<Host> hosts, Dictionary<Guid, List<IngressSlotClaim>> taken) => (this.hosts, this.taken) = (hosts, taken);

    /// <summary>An ingress host takes one ingress replica per core.</summary>
    public static int Capacity(Host host) => host.Cpu;

    public static async Task<IngressSlots> LoadAsync(IQuerySession session, IEnumerable<Host> hosts)
    {
        var ingressHosts = hosts.Where(h => h.Role == HostRole.Ingress).ToList();
        var claims = (await session.Query<IngressSlotClaim>().ToListAsync()).ToLookup(c => c.HostId);
        return new IngressSlots(ingressHosts, ingressHosts.ToDictionary(h => h.Id, h => claims[h.Id].ToList()));
    }

    /// <summary>Every INGRESS host with the replicas it can still take; hosts that are not READY stay in the list with no room,
    /// so a refusal can name the zone they leave empty.</summary>
    public IReadOnlyList<IngressHostSlot> Free() => hosts
        .Select(h => new IngressHostSlot(h.Id, h.Name, h.Zone, h.State == HostState.Ready ? Math.Max(0, Capacity(h) - taken[h.Id].Count) : 0))
        .ToList();

    /// <summary>A deleted ingress gives back every slot it holds; nothing needs to be read for that.</summary>
    public static void ReleaseAll(IDocumentSession session, Guid ingressId) => session.DeleteWhere<IngressSlotClaim>(c => c.IngressId == ingressId);

    /// <summary>Claims and releases what placement and repair events place and remove.</summary>
    public void Apply(IDocumentSession session, IEnumerable<object> events)
    {
        foreach (var e in events)
            switch (e)
            {
                case IngressCreated c:
                    foreach (var r in c.Replicas) Take(session, r.HostId, c.IngressId);
                    break;
                case IngressReplicaMoved m:
                    Release(session, m.From.HostId, m.IngressId);
                    Take(session, m.To.HostId, m.IngressId);
                    break;
                case IngressReplicaLost l:
                    Release(session, l.Replica.HostId, l.IngressId);
                    break;
                case IngressReplicaRestored r:
                    Take(session, r.Replica.HostId, r.IngressId);
                    break;
            }
    }

    private void Take(IDocumentSession session, Guid hostId, Guid ingressId)
    {
        var claims = taken[hostId];
        var slot = Enumerable.Range(0, int.MaxValue).First(n => claims.All(c => c.Slot != n));
        var claim = new IngressSlotClaim { Id = IngressSlotClaim.For(hostId, slot), HostId = hostId, Slot = slot, IngressId = ingressId };
        session.Insert(claim);
        claims.Add(claim);
    }

    private void Release(IDocumentSession session, Guid hostId, Guid ingressId)
    {
        if (!taken.TryGetValue(hostId, out var claims) || claims.FirstOrDefault(c => c.IngressId == ingressId) is not { } claim) return;
        session.Delete<IngressSlotClaim>(claim.Id);
        claims.Remove(claim);
    }
}
