namespace Kraud.Domain.Network;

/// <summary>A pod's names in its VPC: <c>name</c> inside its own namespace, <c>name.namespace</c> from any namespace.</summary>
public sealed record DnsRecord(string Name, string Namespace, IReadOnlyList<string> Ip4, IReadOnlyList<string> Ip6)
{
    public string Qualified => $"{Name}.{Namespace}";
}

/// <summary>The resolver every host runtime serves to the microVMs of a VPC (at the namespace's .1 gateway address).</summary>
public static class ServiceDiscovery
{
    /// <summary>What a query from a microVM in <paramref name="fromNamespace"/> resolves to; an unknown or foreign name resolves to nothing.</summary>
    public static DnsRecord? Resolve(IEnumerable<DnsRecord> table, string fromNamespace, string query)
    {
        var name = query.TrimEnd('.').ToLowerInvariant();
        var dot = name.IndexOf('.');
        var (pod, ns) = dot < 0 ? (name, fromNamespace) : (name[..dot], name[(dot + 1)..]);
        return table.FirstOrDefault(r => r.Name == pod && r.Namespace == ns);
    }
}
