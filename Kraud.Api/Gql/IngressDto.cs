using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;

namespace Kraud.Api.Gql;

public sealed record IngressReplicaDto(Guid HostId, string Zone);
public sealed record RouteDto(string Host, string Path, Guid PodId, int Port);
public sealed record DomainDto(string Name, bool Verified, string VerificationToken);
public sealed record AuthPolicyDto(string Method, string? Issuer, string? Audience, IReadOnlyList<string> AllowedGroups);
public sealed record FirewallRuleDto(string Action, string Protocol, int Port, string Source);

public sealed record IngressDto(Guid Id, string Name, Guid TenantId, string Kind, string State, string Readiness, IReadOnlyList<IngressReplicaDto> Replicas,
    IReadOnlyList<RouteDto> Routes, IReadOnlyList<DomainDto> Domains, string? PublicAddress, IReadOnlyList<string> Warnings, AuthPolicyDto? Auth,
    IReadOnlyList<FirewallRuleDto> Firewall, string? Zone, string? Rack, ResourceOwner? Owner)
{
    public static IngressDto From(Ingress i) => new(i.Id, i.Name, i.TenantId, Enums.Name(i.Kind), i.Deleted ? "DELETED" : i.Degraded ? "DEGRADED" : "ACTIVE",
        i.Kind == IngressKind.Managed ? "USABLE" : "EXPERIMENTAL",
        i.Replicas.Select(r => new IngressReplicaDto(r.HostId, r.Zone)).ToList(),
        i.Routes.Select(r => new RouteDto(r.Host, r.Path, r.PodId, r.Port)).ToList(),
        i.Domains.Values.Select(d => new DomainDto(d.Name, d.Verified, d.VerificationToken)).ToList(),
        i.Exposure?.PublicAddress, WarningsOf(i), PolicyOf(i.Auth),
        i.Firewall.Select(r => new FirewallRuleDto(r.Action, r.Protocol, r.Port, r.Source)).ToList(), i.Exposure?.Zone, i.Exposure?.Rack, i.Owner);

    public static AuthPolicyDto? PolicyOf(AuthPolicy? a) => a is null ? null : new(a.Method.ToUpperInvariant(), a.Issuer, a.Audience, a.AllowedGroups);

    private static IReadOnlyList<string> WarningsOf(Ingress i)
    {
        var warnings = new List<string>();
        if (i.Kind == IngressKind.Direct) warnings.Add(IngressDecider.ExperimentalWarning);
        if (i.Kind == IngressKind.Authenticated) warnings.Add("EXPERIMENTAL: Authenticated Ingress is experimental (product table).");
        if (i.Degraded)
            warnings.Add($"DEGRADED: {i.Lost.Length} replica(s) lost with their host ({string.Join(", ", i.Lost.Select(r => r.HostName))}) wait for room " +
                $"on another INGRESS host of their zone ({string.Join(", ", i.Lost.Select(r => r.Zone).Distinct())}); the other replicas serve meanwhile.");
        if (i.Kind != IngressKind.Direct)
            foreach (var host in i.Routes.Select(r => r.Host).Distinct().Where(h => !i.Serves(h)))
                warnings.Add($"Routes for {host} do not serve until its domain is added and verified (addDomain, then verifyDomain).");
        return warnings;
    }
}
