using System.Net;
using System.Security.Cryptography;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Ingresses;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Ingresses;

public sealed record AddDomainRequest(Guid IngressId, string Domain, Principal By, DateTimeOffset At);

public sealed record VerifyDomainRequest(Guid IngressId, string Domain, Principal By, DateTimeOffset At);

/// <summary>
/// createIngress, addDomain, verifyDomain, deleteIngress. An ingress is placed when it is created (ingress hosts for
/// MANAGED and AUTHENTICATED, a public address and a rack for DIRECT), so a refusal (UNSCHEDULABLE, PRECONDITION,
/// VALIDATION) leaves no trace but the audited rejection. Names, domains and public addresses are claims inserted in
/// the same transaction: a domain belongs to one ingress at a time.
/// </summary>
public static class IngressCommandHandler
{
    public static async Task Handle(CreateIngress c, IDocumentSession session, IMessageContext context, NetworkOptions network)
    {
        c.By.RequireWriter();
        if (await session.LoadAsync<NameClaim>(NameClaim.For("ingress", c.TenantId.ToString(), c.Name)) is not null)
            throw DomainException.Conflict($"An ingress named {c.Name} exists already.");

        var hosts = (await session.Query<HostView>().ToListAsync()).ToDictionary(h => h.Id, h => h.Host);
        var slots = await IngressSlots.LoadAsync(session, hosts.Values);
        var facts = new IngressFacts(await RoutedPodsAsync(session, c.TenantId, c.Routes, hosts), slots.Free(),
            c.Kind == IngressKind.Direct ? await FreePublicAddressAsync(session, network) : null);

        var events = IngressDecider.Decide(c, Ingress.Initial, facts);
        var ingress = Fold.Events<Ingress>(events);
        session.Events.StartStream(c.IngressId, events).Stamp(AuditStamp.For(context, c.By, c.TenantId, nameof(CreateIngress)));
        slots.Apply(session, events);
        session.Insert(new NameClaim { Id = NameClaim.For("ingress", c.TenantId.ToString(), c.Name), OwnerId = c.IngressId });
        if (ingress.Exposure is { } exposure)
        {
            session.Insert(new AddressClaim { Id = AddressClaim.Public(exposure.PublicAddress), OwnerId = c.IngressId });
            await DirectFirewall.SendAsync(session, context, ingress);
        }
    }

    public static async Task Handle(AddDomainRequest r, IDocumentSession session, IMessageContext context)
    {
        r.By.RequireWriter();
        var loaded = await FetchForWritingAsync(session, r.IngressId, r.By);
        var ingress = loaded.State;
        var domain = r.Domain.Trim().TrimEnd('.').ToLowerInvariant();
        var claim = await session.LoadAsync<NameClaim>(NameClaim.For("domain", domain));
        if (claim is not null && claim.OwnerId != ingress.Id)
            throw DomainException.Conflict($"{domain} belongs to another ingress: delete that ingress (or remove the domain there) first.");
        var token = "kraud-verify=" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var events = IngressDecider.Decide(new AddIngressDomain(ingress.Id, domain, token, r.At), ingress);
        if (events.Count == 0) return;
        Streams.Append(loaded, events, AuditStamp.For(context, r.By, ingress.TenantId, nameof(AddIngressDomain)));
        session.Insert(new NameClaim { Id = NameClaim.For("domain", domain), OwnerId = ingress.Id });
    }

    public static async Task Handle(VerifyDomainRequest r, IDocumentSession session, IMessageContext context, IDomainVerifier verifier)
    {
        r.By.RequireWriter();
        var loaded = await FetchForWritingAsync(session, r.IngressId, r.By);
        var ingress = loaded.State;
        var domain = r.Domain.Trim().TrimEnd('.').ToLowerInvariant();
        if (!ingress.Domains.TryGetValue(domain, out var pending)) throw DomainException.NotFound("Domain", domain);
        var (found, evidence) = pending.Verified ? (true, "verified before") : await verifier.CheckAsync(domain, pending.VerificationToken, CancellationToken.None);
        var events = IngressDecider.Decide(new VerifyIngressDomain(ingress.Id, domain, found, evidence, r.At), ingress);
        if (events.Count == 0) return;
        Streams.Append(loaded, events, AuditStamp.For(context, r.By, ingress.TenantId, nameof(VerifyIngressDomain)));
    }

    public static async Task Handle(DeleteIngress c, IDocumentSession session, IMessageContext context)
    {
        c.By.RequireWriter();
        var loaded = await FetchForWritingAsync(session, c.IngressId, c.By);
        var ingress = loaded.State;
        var events = IngressDecider.Decide(c, ingress);
        if (events.Count == 0) return;
        Streams.Append(loaded, events, AuditStamp.For(context, c.By, ingress.TenantId, nameof(DeleteIngress)));
        IngressSlots.ReleaseAll(session, ingress.Id);
        session.Delete<NameClaim>(NameClaim.For("ingress", ingress.TenantId.ToString(), ingress.Name));
        foreach (var domain in ingress.Domains.Keys) session.Delete<NameClaim>(NameClaim.For("domain", domain));
        if (ingress.Exposure is { } exposure)
        {
            session.Delete<AddressClaim>(AddressClaim.Public(exposure.PublicAddress));
            await DirectFirewall.SendAsync(session, context, ingress with { Firewall = [] });
        }
    }

    public static async Task Handle(SetIngressRoutes c, IDocumentSession session, IMessageContext context)
    {
        c.By.RequireWriter();
        var loaded = await FetchForWritingAsync(session, c.IngressId, c.By);
        var ingress = loaded.State;
        var hosts = (await session.Query<HostView>().ToListAsync()).ToDictionary(h => h.Id, h => h.Host);
        var events = IngressDecider.Decide(c, ingress, new IngressFacts(await RoutedPodsAsync(session, ingress.TenantId, c.Routes, hosts), [], null));
        if (events.Count == 0) return;
        Streams.Append(loaded, events, AuditStamp.For(context, c.By, ingress.TenantId, nameof(SetIngressRoutes)));
    }

    /// <summary>The tenant's live pods the routes name, with where their microVMs run.</summary>
    private static async Task<Dictionary<Guid, RoutedPod>> RoutedPodsAsync(IQuerySession session, Guid tenantId, IEnumerable<IngressRoute> routes,
        IReadOnlyDictionary<Guid, Host> hosts) =>
        (await session.LoadManyAsync<PodView>(routes.Select(r => r.PodId).Distinct().ToArray()))
            .Where(p => p.TenantId == tenantId && p.State != PodState.Stopped && !p.Pod.Deleting)
            .ToDictionary(p => p.Id, p => new RoutedPod(p.Id, p.Name,
                p.Pod.Live.Where(i => hosts.ContainsKey(i.HostId)).OrderBy(i => i.Replica).Select(i => (hosts[i.HostId].Zone, hosts[i.HostId].Rack)).ToList()));

    /// <summary>Another tenant's ingress is NOT_FOUND (existence does not leak), as are deleted ones for changes.</summary>
    private static async Task<Loaded<Ingress>> FetchForWritingAsync(IDocumentSession session, Guid id, Principal by)
    {
        var loaded = await Streams.FetchForWritingAsync<Ingress>(session, id);
        if (!loaded.State.Exists || (by.TenantId is { } tenant && loaded.State.TenantId != tenant)) throw DomainException.NotFound("Ingress", id);
        return loaded;
    }

    private static async Task<string?> FreePublicAddressAsync(IQuerySession session, NetworkOptions network)
    {
        var candidates = network.PublicAddresses().ToList();
        var taken = (await session.Query<AddressClaim>().Where(c => c.Id.StartsWith("public:")).Select(c => c.Id).ToListAsync()).ToHashSet();
        return candidates.FirstOrDefault(a => !taken.Contains(AddressClaim.Public(a)));
    }
}

/// <summary>The "Network" configuration section.</summary>
public sealed class NetworkOptions
{
    public const string Section = "Network";

    /// <summary>Where direct ingresses get their public addresses (default: TEST-NET-3, which is never routed).</summary>
    public string PublicPool { get; set; } = "203.0.113.0/24";

    public IEnumerable<string> PublicAddresses()
    {
        var network = IPNetwork.Parse(PublicPool);
        var start = BitConverter.ToUInt32(network.BaseAddress.GetAddressBytes().Reverse().ToArray());
        var size = 1u << (32 - network.PrefixLength);
        for (var i = 1u; i + 1 < size; i++)
            yield return new IPAddress(BitConverter.GetBytes(start + i).Reverse().ToArray()).ToString();
    }
}

/// <summary>
/// The firewall a DIRECT ingress's tenant stated travels to every host that runs one of the pod's microVMs, which
/// installs it in the microVM's configuration; a replica booted later (moved, restarted) gets it with its boot.
/// </summary>
public static class DirectFirewall
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IDocumentSession, List<Ingress>> Exposures = new();

    public static async Task SendAsync(IDocumentSession session, IMessageContext context, Ingress ingress)
    {
        if (ingress.Exposure is null) return;
        var pod = await session.LoadAsync<PodView>(ingress.Routes[0].PodId);
        if (pod is null) return;
        foreach (var vm in pod.Pod.Live)
            await context.EndpointFor(HostQueues.Uri(vm.HostName)).SendAsync(Command(ingress, vm.HostId, vm.VmId, pod.Id));
    }

    /// <summary>The rules of every live DIRECT ingress that exposes this pod, for a microVM of it that is booting.</summary>
    public static async Task SendForBootAsync(IDocumentSession session, IMessageContext context, Guid podId, Guid hostId, string hostName, Guid vmId)
    {
        // Read once per transaction: the scheduler boots hundreds of microVMs in one.
        if (!Exposures.TryGetValue(session, out var exposures))
        {
            exposures = (await session.Query<IngressView>().Where(i => !i.Deleted && i.Ingress.Kind == IngressKind.Direct).ToListAsync())
                .Select(v => v.Ingress).ToList();
            Exposures.AddOrUpdate(session, exposures);
        }
        foreach (var ingress in exposures.Where(i => i.Routes[0].PodId == podId))
            await context.EndpointFor(HostQueues.Uri(hostName)).SendAsync(Command(ingress, hostId, vmId, podId));
    }

    private static ApplyFirewall Command(Ingress ingress, Guid hostId, Guid vmId, Guid podId) => new(hostId, vmId, podId, ingress.Id,
        ingress.Exposure!.PublicAddress, ingress.Exposure.Protocol, ingress.Exposure.Port, ingress.Routes[0].Port,
        ingress.Firewall.Select(r => new FirewallRuleSpec(r.Action, r.Protocol, r.Port, r.Source)).ToList());
}
