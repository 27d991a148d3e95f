using System.Collections.Immutable;
using Kraud.Domain.Common;

namespace Kraud.Domain.Network;

/// <summary>A tenant's VPC came to be with its IPv6 ULA /48.</summary>
public sealed record VpcCreated(Guid VpcId, Guid TenantId, string Ipv6Prefix, DateTimeOffset At);

/// <summary>A namespace of the tenant got its overlay: the /64 of the VPC's /48 and a /23 of 10.0.0.0/8.</summary>
public sealed record VpcNamespaceAdded(Guid VpcId, string Namespace, int Subnet, string Ipv4Cidr, string Ipv6Cidr, DateTimeOffset At);

public sealed record VpcNamespace(string Name, int Subnet, string Ipv4Cidr, string Ipv6Cidr)
{
    public int Ipv4Block => Ipam.Ipv4BlockIndex(Ipv4Cidr);
}

public sealed record Vpc(Guid Id, Guid TenantId, string Ipv6Prefix, bool Exists, ImmutableSortedDictionary<string, VpcNamespace> Namespaces)
    : IState<Vpc>
{
    public const string Encryption = "wireguard";

    public static Vpc Initial { get; } = new(Guid.Empty, Guid.Empty, "", false, ImmutableSortedDictionary<string, VpcNamespace>.Empty);

    /// <summary>One VPC per tenant, so its id follows from the tenant's.</summary>
    public static Guid IdFor(Guid tenantId) => DeterministicId.From("vpc", tenantId);

    public Vpc Evolve(object @event) => @event switch
    {
        VpcCreated e => new Vpc(e.VpcId, e.TenantId, e.Ipv6Prefix, true, ImmutableSortedDictionary<string, VpcNamespace>.Empty),
        VpcNamespaceAdded e => this with { Namespaces = Namespaces.SetItem(e.Namespace, new VpcNamespace(e.Namespace, e.Subnet, e.Ipv4Cidr, e.Ipv6Cidr)) },
        _ => this,
    };

    /// <summary>The addresses of host offset <paramref name="offset"/> in a namespace.</summary>
    public (string Ip6, string Ip4) Addresses(VpcNamespace ns, int offset) =>
        (Ipam.Ipv6Address(Ipv6Prefix, ns.Subnet, offset), Ipam.Ipv4Address(ns.Ipv4Block, offset));
}

public sealed record CreateVpc(Guid TenantId, string Ipv6Prefix, DateTimeOffset At);

/// <summary>The /23 comes from the caller, which made sure no other VPC holds it.</summary>
public sealed record AddVpcNamespace(Guid TenantId, string Namespace, int Ipv4Block, DateTimeOffset At);

public static class VpcDecider
{
    /// <summary>A /48 has 65,536 /64s; the first (0) is kept for the platform's own addresses.</summary>
    public const int MaxNamespaces = 0xffff;

    public static IReadOnlyList<object> Decide(CreateVpc c, Vpc state) => state.Exists
        ? []
        : [new VpcCreated(Vpc.IdFor(c.TenantId), c.TenantId, c.Ipv6Prefix, c.At)];

    public static IReadOnlyList<object> Decide(AddVpcNamespace c, Vpc state)
    {
        if (!state.Exists) throw DomainException.NotFound("VPC of tenant", c.TenantId);
        Names.RequireDnsLabel(c.Namespace, "namespace");
        if (state.Namespaces.ContainsKey(c.Namespace)) return [];
        var cidr = Ipam.Ipv4Block(c.Ipv4Block);
        if (state.Namespaces.Values.Any(n => n.Ipv4Cidr == cidr))
            throw DomainException.Conflict($"{cidr} belongs to another namespace of this VPC already.");
        var subnet = state.Namespaces.Count + 1;
        if (subnet > MaxNamespaces) throw DomainException.Validation($"A VPC holds at most {MaxNamespaces} namespaces.");
        return [new VpcNamespaceAdded(state.Id, c.Namespace, subnet, cidr, Ipam.Ipv6Subnet(state.Ipv6Prefix, subnet), c.At)];
    }
}
