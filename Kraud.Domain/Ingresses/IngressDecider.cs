using System.Net;
using System.Text.RegularExpressions;
using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.Ingresses;

/// <param name="Owner">Set when a product (an app) makes the ingress as one of its parts.</param>
public sealed record CreateIngress(
    Guid IngressId, Guid TenantId, string Name, IngressKind Kind, IReadOnlyList<IngressRoute> Routes, AuthPolicy? Auth, int? Port, string? Protocol,
    IReadOnlyList<FirewallRule> Firewall, bool AcceptExposure, int FailuresTolerated, Principal By, DateTimeOffset At, ResourceOwner? Owner = null);

/// <summary>What the decision needs to know about the world: the tenant's pods the routes name, the ingress hosts, a free public address.</summary>
public sealed record IngressFacts(IReadOnlyDictionary<Guid, RoutedPod> Pods, IReadOnlyList<IngressHostSlot> IngressHosts, string? FreePublicAddress);

/// <summary>A pod a route names, where its microVMs run (DIRECT binds to the rack of the first).</summary>
public sealed record RoutedPod(Guid PodId, string Name, IReadOnlyList<(string Zone, string Rack)> Placements);

/// <summary>An ingress host and how many more ingress replicas it can take (none unless it is READY).</summary>
public sealed record IngressHostSlot(Guid HostId, string Name, string Zone, int Free);

public sealed record AddIngressDomain(Guid IngressId, string Domain, string VerificationToken, DateTimeOffset At);

public sealed record VerifyIngressDomain(Guid IngressId, string Domain, bool TxtRecordFound, string Evidence, DateTimeOffset At);

/// <param name="OnBehalfOf">The owner removing its own ingress; an owned ingress refuses anyone else.</param>
public sealed record DeleteIngress(Guid IngressId, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null);

/// <summary>Keep a managed ingress on hosts that serve. <paramref name="Leaving"/>: the INGRESS hosts that stopped serving (failed, draining, drained), with why.</summary>
public sealed record RepairIngress(Guid IngressId, IReadOnlyDictionary<Guid, string> Leaving, DateTimeOffset At);
/// <summary>Points a managed ingress's routes at other pods (the app rollout uses it; the ingress, its name and its domains stay).</summary>
public sealed record SetIngressRoutes(Guid IngressId, IReadOnlyList<IngressRoute> Routes, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null);

public static partial class IngressDecider
{
    public const int MaxFailuresTolerated = 3;
    public const string ExperimentalWarning =
        "EXPERIMENTAL: a direct ingress exposes the microVM on a public address bound to one rack; there is no load balancing " +
        "(that is yours to do) and the firewall rules you gave are all that stands between the internet and the microVM.";

    [GeneratedRegex("^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex HostName();

    public static void RequireHostName(string value, string field)
    {
        if (!HostName().IsMatch(value))
            throw DomainException.Validation($"{field} '{value}' is not a DNS name: lowercase labels separated by dots, e.g. shop.example.com.");
    }

    public static IReadOnlyList<object> Decide(CreateIngress c, Ingress state, IngressFacts facts)
    {
        if (state.Exists) throw DomainException.Conflict($"Ingress {c.IngressId} exists already.");
        Names.RequireDnsLabel(c.Name, "name");
        RequireRoutes(c.Routes, facts);

        var created = c.Kind switch
        {
            IngressKind.Direct => Direct(c, facts),
            _ => Managed(c, facts),
        };
        return c.Owner is { } owner ? [.. created, new IngressOwnedBy(c.IngressId, owner, c.At)] : created;
    }

    private static void RequireRoutes(IReadOnlyList<IngressRoute> routes, IngressFacts facts)
    {
        foreach (var r in routes)
        {
            RequireHostName(r.Host, "routes.host");
            if (!r.Path.StartsWith('/') || r.Path.Any(ch => char.IsWhiteSpace(ch) || char.IsControl(ch)))
                throw DomainException.Validation($"routes.path '{r.Path}' must start with '/' and contain no white space.");
            Names.RequireRange(r.Port, 1, 65535, "routes.port");
            if (!facts.Pods.ContainsKey(r.PodId)) throw DomainException.NotFound("Pod", r.PodId);
        }
        if (routes.GroupBy(r => (r.Host, r.Path)).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw DomainException.Validation($"Two routes for {twice.Key.Host}{twice.Key.Path}: each host and path goes to one pod.");
    }

    public static IReadOnlyList<object> Decide(SetIngressRoutes c, Ingress state, IngressFacts facts)
    {
        RequireLive(state, c.IngressId);
        if (state.Owner is { } owner && owner.Id != c.OnBehalfOf) throw owner.Refuses($"Ingress {state.Name}");
        if (state.Kind == IngressKind.Direct) throw DomainException.Validation("A direct ingress is bound to its pod's rack: create a new one instead.");
        if (c.Routes.Count == 0) throw DomainException.Validation("A managed ingress needs at least one route (host, path, pod, port).");
        RequireRoutes(c.Routes, facts);
        return c.Routes.SequenceEqual(state.Routes) ? [] : [new IngressRoutesChanged(c.IngressId, c.Routes, c.By.Actor, c.At)];
    }

    private static IReadOnlyList<object> Managed(CreateIngress c, IngressFacts facts)
    {
        if (c.Routes.Count == 0) throw DomainException.Validation("A managed ingress needs at least one route (host, path, pod, port).");
        if (c.Firewall.Count > 0 || c.Port is not null || c.Protocol is not null)
            throw DomainException.Validation("port, protocol and firewall belong to DIRECT ingresses; a managed ingress filters HTTP itself.");
        if (c.Kind == IngressKind.Managed && c.Auth is not null)
            throw DomainException.Validation("An auth policy needs kind AUTHENTICATED.");
        if (c.Kind == IngressKind.Authenticated) RequirePolicy(c.Auth);
        Names.RequireRange(c.FailuresTolerated, 1, MaxFailuresTolerated, "failuresTolerated");
        var replicas = IngressPlacement.Place(c.FailuresTolerated, facts.IngressHosts);
        return [new IngressCreated(c.IngressId, c.TenantId, c.Name, c.Kind, c.Routes, c.Auth, [], replicas, null, c.By.Actor, c.At)];
    }

    private static void RequirePolicy(AuthPolicy? auth)
    {
        if (auth is null)
            throw DomainException.Validation("An AUTHENTICATED ingress needs an auth policy: method OIDC (issuer, audience), SAML (issuer) or BASIC.");
        switch (auth.Method.ToUpperInvariant())
        {
            case "OIDC":
                RequireHttpsUrl(auth.Issuer, "auth.issuer (the OIDC issuer)");
                Names.RequireText(auth.Audience, "auth.audience (the OIDC client id)");
                break;
            case "SAML":
                RequireHttpsUrl(auth.Issuer, "auth.issuer (the SAML identity provider's metadata URL)");
                break;
            case "BASIC":
                if (auth.Issuer is not null || auth.Audience is not null || auth.AllowedGroups.Count > 0)
                    throw DomainException.Validation("BASIC authentication takes no issuer, audience or groups.");
                break;
            default:
                throw DomainException.Validation($"auth.method '{auth.Method}' is not one of OIDC, SAML, BASIC.");
        }
        if (auth.AllowedGroups.Any(string.IsNullOrWhiteSpace)) throw DomainException.Validation("auth.allowedGroups must not hold empty names.");
    }

    private static void RequireHttpsUrl(string? value, string field)
    {
        if (string.IsNullOrWhiteSpace(value)) throw DomainException.Validation($"{field} is required.");
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
            throw DomainException.Validation($"{field} '{value}' must be an https URL.");
    }

    private static IReadOnlyList<object> Direct(CreateIngress c, IngressFacts facts)
    {
        if (c.Auth is not null) throw DomainException.Validation("A direct ingress passes raw TCP/UDP: it cannot authenticate (use AUTHENTICATED).");
        if (c.Routes.Count != 1) throw DomainException.Validation("A direct ingress exposes exactly one pod: give one route naming the pod and its port.");
        if (c.Port is not { } port) throw DomainException.Validation("port (the public port) is required for a direct ingress.");
        Names.RequireRange(port, 1, 65535, "port");
        var protocol = (c.Protocol ?? "").ToUpperInvariant();
        if (protocol is not ("TCP" or "UDP")) throw DomainException.Validation($"protocol '{c.Protocol}' is not one of TCP, UDP.");
        if (c.Firewall.Count == 0)
            throw DomainException.Validation("A direct ingress needs firewall rules: the microVM is exposed, and only the rules you state let traffic in.");
        var rules = c.Firewall.Select(Normalize).ToList();
        if (!c.AcceptExposure)
            throw new DomainException(ErrorCode.Precondition,
                "A direct ingress puts the microVM on a public address with no load balancer or filter in front of it except the firewall " +
                "rules you give. Set acceptExposure: true to confirm you accept that exposure.");

        var pod = facts.Pods[c.Routes[0].PodId];
        if (pod.Placements.Count == 0)
            throw new DomainException(ErrorCode.Precondition, $"Pod {pod.Name} runs nowhere yet: a direct ingress binds to the rack of its microVM.");
        var (zone, rack) = pod.Placements[0];
        var address = facts.FreePublicAddress ?? throw new DomainException(ErrorCode.Unschedulable, "No public address is free for a direct ingress.");
        return [new IngressCreated(c.IngressId, c.TenantId, c.Name, c.Kind, c.Routes, null, rules, [], new DirectExposure(address, protocol, port, zone, rack),
            c.By.Actor, c.At)];
    }

    private static FirewallRule Normalize(FirewallRule r)
    {
        var action = r.Action.ToUpperInvariant();
        if (action is not ("ALLOW" or "DENY")) throw DomainException.Validation($"firewall.action '{r.Action}' is not one of ALLOW, DENY.");
        var protocol = r.Protocol.ToUpperInvariant();
        if (protocol is not ("TCP" or "UDP")) throw DomainException.Validation($"firewall.protocol '{r.Protocol}' is not one of TCP, UDP.");
        Names.RequireRange(r.Port, 1, 65535, "firewall.port");
        if (!IPNetwork.TryParse(r.Source, out var source) || source.ToString() != r.Source)
            throw DomainException.Validation($"firewall.source '{r.Source}' is not a network in CIDR form (e.g. 203.0.113.0/24 or 0.0.0.0/0).");
        return new FirewallRule(action, protocol, r.Port, r.Source);
    }

    public static IReadOnlyList<object> Decide(AddIngressDomain c, Ingress state)
    {
        RequireLive(state, c.IngressId);
        RequireHostName(c.Domain, "name");
        if (c.Domain.EndsWith("." + Ingress.PlatformDomain, StringComparison.Ordinal) || c.Domain == Ingress.PlatformDomain)
            throw DomainException.Validation($"Names under {Ingress.PlatformDomain} are the platform's and serve without a domain.");
        return state.Domains.ContainsKey(c.Domain) ? [] : [new IngressDomainAdded(c.IngressId, c.Domain, c.VerificationToken, c.At)];
    }

    public static IReadOnlyList<object> Decide(VerifyIngressDomain c, Ingress state)
    {
        RequireLive(state, c.IngressId);
        if (!state.Domains.TryGetValue(c.Domain, out var domain)) throw DomainException.NotFound("Domain", c.Domain);
        if (domain.Verified) return [];
        if (!c.TxtRecordFound)
            throw new DomainException(ErrorCode.Precondition,
                $"{DomainVerification.RecordName(c.Domain)} has no TXT record \"{domain.VerificationToken}\" yet ({c.Evidence}). Publish it and verify again.");
        return [new IngressDomainVerified(c.IngressId, c.Domain, c.Evidence, c.At)];
    }

    public static IReadOnlyList<object> Decide(DeleteIngress c, Ingress state)
    {
        if (!state.Exists) throw DomainException.NotFound("Ingress", c.IngressId);
        if (state.Deleted) return [];
        if (state.Owner is { } owner && owner.Id != c.OnBehalfOf) throw owner.Refuses($"Ingress {state.Name}");
        return [new IngressDeleted(c.IngressId, c.By.Actor, c.At)];
    }

    /// <summary>
    /// A replica on a host that stopped serving moves to another INGRESS host of its zone (distinct from the ingress's
    /// other hosts, so 2N+1 over two zones still holds); with none to take it, it is lost and the ingress DEGRADED, and a
    /// lost replica comes back as soon as its zone has room again. Another zone would not do: N+1 and N per zone is what
    /// lets either zone alone survive N failures.
    /// </summary>
    public static IReadOnlyList<object> Decide(RepairIngress c, Ingress state, IReadOnlyList<IngressHostSlot> hosts)
    {
        if (!state.Exists || state.Deleted || state.Kind == IngressKind.Direct) return [];
        var free = hosts.ToDictionary(h => h.HostId, h => c.Leaving.ContainsKey(h.HostId) ? 0 : h.Free);
        var used = state.Replicas.Select(r => r.HostId).ToHashSet();
        IngressReplica? Take(string zone)
        {
            var host = hosts.Where(h => h.Zone == zone && free[h.HostId] > 0 && !used.Contains(h.HostId))
                .OrderByDescending(h => free[h.HostId]).ThenBy(h => h.Name, StringComparer.Ordinal).FirstOrDefault();
            if (host is null) return null;
            free[host.HostId]--;
            used.Add(host.HostId);
            return new IngressReplica(host.HostId, host.Name, host.Zone);
        }

        var events = new List<object>();
        foreach (var replica in state.Replicas.Where(r => c.Leaving.ContainsKey(r.HostId)))
        {
            var reason = c.Leaving[replica.HostId];
            events.Add(Take(replica.Zone) is { } to
                ? new IngressReplicaMoved(c.IngressId, replica, to, reason, c.At)
                : new IngressReplicaLost(c.IngressId, replica, $"{reason}; zone {replica.Zone} has no other READY INGRESS host with free capacity", c.At));
        }
        foreach (var lost in state.Lost.IsDefault ? [] : state.Lost)
            if (Take(lost.Zone) is { } to) events.Add(new IngressReplicaRestored(c.IngressId, to, c.At));
        return events;
    }

    private static void RequireLive(Ingress state, Guid id)
    {
        if (!state.Exists || state.Deleted) throw DomainException.NotFound("Ingress", id);
    }
}

public static class DomainVerification
{
    /// <summary>Where the tenant publishes the token: a TXT record at this name.</summary>
    public static string RecordName(string domain) => "_kraud-challenge." + domain;
}
