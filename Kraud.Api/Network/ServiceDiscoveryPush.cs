using Kraud.Api.Common;
using Kraud.Api.Pods;
using Kraud.Domain.HostProtocol;
using Kraud.Projections.Fleet;
using Kraud.Projections.Network;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>
/// Pushes to each host that runs real guests (its runtime reported an accelerator) the tenants of its microVMs with their
/// overlays and service discovery tables (<see cref="VpcQueries.DnsTable"/>, the same table <c>Vpc.dns</c> shows): its
/// resolver answers from it and its firewall lets only one tenant's addresses talk. Part of the mesh's batch, which runs
/// after every lease, release and change of a pod's running microVMs.
/// </summary>
public static class ServiceDiscoveryPush
{
    public static async Task SendAsync(IDocumentSession session, IMessageContext context, IReadOnlyList<HostView> hosts, IReadOnlyList<PodView> pods,
        DateTimeOffset now)
    {
        var real = hosts.Where(h => h.Host.Accelerator is not null && h.State != Domain.Fleet.HostState.Failed).ToList();
        if (real.Count == 0) return;
        var vpcs = (await session.Query<VpcView>().ToListAsync()).ToDictionary(v => v.TenantId, v => v.Vpc);
        var pushes = await HostPushes.LoadAsync(session, nameof(ApplyServiceDiscovery), real.Select(h => h.Id));
        var byTenant = pods.GroupBy(p => p.TenantId).ToDictionary(g => g.Key, g => g.Select(p => p.Pod).ToList());
        foreach (var host in real)
        {
            var tenants = MeshHandler.MeshVms(pods).Where(v => v.HostId == host.Id).Select(v => v.TenantId).Distinct().Order()
                .Where(vpcs.ContainsKey)
                .Select(t => new TenantNetwork(t, vpcs[t].Ipv6Prefix,
                    vpcs[t].Namespaces.Values.Select(n => new NamespaceOverlay(n.Name, n.Ipv4Cidr, n.Ipv6Cidr)).ToList(),
                    VpcQueries.DnsTable(byTenant.GetValueOrDefault(t) ?? [])))
                .ToList();
            // The runtime's key is new with every start: a restarted runtime, which lost its table, is sent it again.
            if (pushes.Next(host.Id, new { tenants, runtimeKey = host.Host.WireGuardPublicKey }, now) is not { } revision) continue;
            await context.EndpointFor(HostQueues.Uri(host.Name)).SendAsync(new ApplyServiceDiscovery(host.Id, revision, tenants));
        }
    }
}
