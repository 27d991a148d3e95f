using System.Collections.Immutable;
using Kraud.Domain.Common;

namespace Kraud.Domain.Ingresses;

public enum IngressKind { Managed, Authenticated, Direct }

public sealed record IngressRoute(string Host, string Path, Guid PodId, int Port);

/// <summary>Who may pass an AUTHENTICATED ingress: OIDC (issuer, audience, groups), SAML (IdP metadata) or BASIC.</summary>
public sealed record AuthPolicy(string Method, string? Issuer, string? Audience, IReadOnlyList<string> AllowedGroups);

/// <summary>A rule of the firewall a DIRECT ingress's microVMs carry (the first matching rule wins; the last rule of every set denies).</summary>
public sealed record FirewallRule(string Action, string Protocol, int Port, string Source);

public sealed record IngressReplica(Guid HostId, string HostName, string Zone);

/// <summary>Where a DIRECT ingress is exposed: one public address routed to one rack of one zone.</summary>
public sealed record DirectExposure(string PublicAddress, string Protocol, int Port, string Zone, string Rack);

public sealed record IngressCreated(
    Guid IngressId, Guid TenantId, string Name, IngressKind Kind, IReadOnlyList<IngressRoute> Routes, AuthPolicy? Auth,
    IReadOnlyList<FirewallRule> Firewall, IReadOnlyList<IngressReplica> Replicas, DirectExposure? Exposure, string CreatedBy, DateTimeOffset At);

/// <summary>The tenant claimed a domain for the ingress; it serves once a TXT record proves the tenant controls it.</summary>
public sealed record IngressDomainAdded(Guid IngressId, string Domain, string VerificationToken, DateTimeOffset At);

public sealed record IngressDomainVerified(Guid IngressId, string Domain, string Evidence, DateTimeOffset At);

public sealed record IngressDeleted(Guid IngressId, string By, DateTimeOffset At);

/// <summary>The replica's host failed or is being drained: the replica now runs on another INGRESS host of the same zone.</summary>
public sealed record IngressReplicaMoved(Guid IngressId, IngressReplica From, IngressReplica To, string Reason, DateTimeOffset At);

/// <summary>The replica's host stopped serving and its zone has no INGRESS host to take it: the ingress runs short (DEGRADED) until one has room.</summary>
public sealed record IngressReplicaLost(Guid IngressId, IngressReplica Replica, string Reason, DateTimeOffset At);

/// <summary>A replica lost earlier runs again, on a host of the zone it was lost in.</summary>
public sealed record IngressReplicaRestored(Guid IngressId, IngressReplica Replica, DateTimeOffset At);
/// <summary>The ingress is part of another resource (an app's entrance): only that resource re-routes or deletes it.</summary>
public sealed record IngressOwnedBy(Guid IngressId, ResourceOwner Owner, DateTimeOffset At);

/// <summary>The routes now go to other pods (an app upgrade hands its ingress to the new version's pods).</summary>
public sealed record IngressRoutesChanged(Guid IngressId, IReadOnlyList<IngressRoute> Routes, string By, DateTimeOffset At);

/// <summary>A BASIC user was added to the ingress, or its password replaced (the password's hash is kept outside the log).</summary>
public sealed record IngressUserSet(Guid IngressId, string Username, string By, DateTimeOffset At);

public sealed record IngressDomain(string Name, string VerificationToken, bool Verified);

public sealed record Ingress(
    Guid Id, Guid TenantId, string Name, IngressKind Kind, bool Exists, bool Deleted, ImmutableArray<IngressRoute> Routes, AuthPolicy? Auth,
    ImmutableArray<FirewallRule> Firewall, ImmutableArray<IngressReplica> Replicas, DirectExposure? Exposure,
    ImmutableSortedDictionary<string, IngressDomain> Domains, DateTimeOffset CreatedAt, ImmutableArray<IngressReplica> Lost) : IState<Ingress>
{
    public static Ingress Initial { get; } = new(Guid.Empty, Guid.Empty, "", IngressKind.Managed, false, false, [], null, [], [], null,
        ImmutableSortedDictionary<string, IngressDomain>.Empty, default, []);

    public ResourceOwner? Owner { get; init; }

    /// <summary>A managed ingress short of its 2N+1 replicas: it serves from the others, with fewer failures to spare.</summary>
    public bool Degraded => !Lost.IsDefaultOrEmpty;

    /// <summary>Hosts under the platform's own zone serve at once; any other host name only after its domain is verified.</summary>
    public const string PlatformDomain = "ingress.kraud.cloud";

    public bool Serves(string host) =>
        host.EndsWith("." + PlatformDomain, StringComparison.Ordinal) || Domains.Values.Any(d => d.Verified && Covers(d.Name, host));

    public static bool Covers(string domain, string host) => host == domain || host.EndsWith("." + domain, StringComparison.Ordinal);

    public Ingress Evolve(object @event) => @event switch
    {
        IngressCreated e => new Ingress(e.IngressId, e.TenantId, e.Name, e.Kind, true, false, [.. e.Routes], e.Auth, [.. e.Firewall], [.. e.Replicas],
            e.Exposure, ImmutableSortedDictionary<string, IngressDomain>.Empty, e.At, []),
        IngressDomainAdded e => this with { Domains = Domains.SetItem(e.Domain, new IngressDomain(e.Domain, e.VerificationToken, false)) },
        IngressDomainVerified e => this with { Domains = Domains.SetItem(e.Domain, Domains[e.Domain] with { Verified = true }) },
        IngressDeleted => this with { Deleted = true },
        IngressOwnedBy e => this with { Owner = e.Owner },
        IngressReplicaMoved e => this with { Replicas = Replicas.Replace(Replicas.First(r => r.HostId == e.From.HostId), e.To) },
        IngressReplicaLost e => this with { Replicas = Replicas.RemoveAll(r => r.HostId == e.Replica.HostId), Lost = (Lost.IsDefault ? [] : Lost).Add(e.Replica) },
        IngressReplicaRestored e => this with { Replicas = Replicas.Add(e.Replica), Lost = Lost.Remove(Lost.First(r => r.Zone == e.Replica.Zone)) },
        IngressRoutesChanged e => this with { Routes = [.. e.Routes] },
        _ => this,
    };
}
