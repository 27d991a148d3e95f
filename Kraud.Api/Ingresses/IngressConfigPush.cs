using Kraud.Api.Common;
using Kraud.Api.Pods;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Ingresses;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Ingresses;

/// <summary>
/// Pushes to every INGRESS host that runs a proxy what <see cref="IngressHostConfig"/> renders for it (the same rendering
/// <c>ingressHostConfig</c> shows), with its BASIC users' password hashes and a certificate of Kraud's ingress CA for its
/// names, whenever that changes: part of the mesh's batch, which runs after every change of an ingress, of where pods'
/// microVMs run, and of an ingress host.
/// </summary>
public static class IngressConfigPush
{
    public static async Task SendAsync(IDocumentSession session, IMessageContext context, IngressCertificateAuthority ca, IReadOnlyList<HostView> hosts,
        DateTimeOffset now)
    {
        var proxies = hosts.Where(h => h is { Role: HostRole.Ingress } && h.Host.IngressEndpoint is not null && h.State != HostState.Failed).ToList();
        if (proxies.Count == 0) return;
        var pushes = await HostPushes.LoadAsync(session, nameof(ApplyIngressConfig), proxies.Select(h => h.Id));
        foreach (var host in proxies)
        {
            var rendered = await IngressHostConfig.RenderAsync(session, host.Id, CancellationToken.None);
            var users = await IngressUsers.ForAsync(session, rendered.Ingresses.Select(i => i.IngressId).ToArray());
            var sites = rendered.Ingresses.Select(i => new IngressSite(i.IngressId, i.TenantId, i.Name, i.Kind, i.TlsHostnames,
                    i.Auth is null ? null : new IngressSiteAuth(i.Auth.Method, i.Auth.Issuer, i.Auth.Audience, i.Auth.AllowedGroups,
                        users.GetValueOrDefault(i.IngressId) ?? []),
                    i.Routes.Select(r => new IngressSiteRoute(r.Host, r.Path, r.Backends)).ToList()))
                .ToList();
            // The runtime's key is new with every start: a restarted proxy, which lost its configuration, is sent it again.
            if (pushes.Next(host.Id, new { sites, host.Host.WireGuardPublicKey }, now) is not { } revision) continue;
            var names = new List<string> { "*." + Ingress.PlatformDomain };
            names.AddRange(sites.SelectMany(s => s.Hostnames).Where(h => !h.EndsWith("." + Ingress.PlatformDomain, StringComparison.Ordinal)).Distinct());
            await context.EndpointFor(HostQueues.Uri(host.Name)).SendAsync(new ApplyIngressConfig(host.Id, revision, sites, [ca.Issue(names, now)]));
        }
    }
}
