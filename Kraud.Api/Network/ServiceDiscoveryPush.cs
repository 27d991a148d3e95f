using Kraud.Api.Common;
using Kraud.Api.Pods;
using Kraud.Domain.HostProtocol;
using Kraud.Projections.Fleet;
using Kraud.Projections.Network;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>What a host's data plane was last sent (hash of its <see cref="ApplyServiceDiscovery"/> content), so unchanged tables are not sent again.</summary>
public sealed class ServiceDiscoveryPushed
{
    public Guid Id { get; set; }
    public long Revision { get; set; }
    public string Hash { get; set; } = "";
}

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
        var pushed = (await session.LoadManyAsync<ServiceDiscoveryPushed>(real.Select(h => h.Id).ToArray())).ToDictionary(p => p.Id);
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
            var hash = Hash(tenants, host.Host.WireGuardPublicKey);
            var before = pushed.GetValueOrDefault(host.Id);
            if (before?.Hash == hash) continue;
            // Ticks of the deciding clock: one sequential queue decides, so revisions only grow.
            var revision = Math.Max((before?.Revision ?? 0) + 1, now.UtcTicks);
            session.Store(new ServiceDiscoveryPushed { Id = host.Id, Revision = revision, Hash = hash });
            await context.EndpointFor(HostQueues.Uri(host.Name)).SendAsync(new ApplyServiceDiscovery(host.Id, revision, tenants));
        }
    }

    private static string Hash(IReadOnlyList<TenantNetwork> tenants, string? runtimeKey) => Convert.ToHexStringLower(
        System.Security.Cryptography.SHA256.HashData(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new { tenants, runtimeKey })));
}
