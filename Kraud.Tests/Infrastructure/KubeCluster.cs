namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A Managed Kubernetes cluster of a test's own tenant, with a kubectl for it. Disposed, it deletes every cluster of the
/// tenant (their Deployments' pods with them) and waits until none of the tenant's pods holds a host any more: the Api
/// collection shares one simulated fleet, and the specs after this one need zone fsn1-a's N+2 headroom back.
/// </summary>
public sealed class KubeCluster(TenantScope tenant, string id, Kubectl kubectl) : IAsyncDisposable
{
    public TenantScope Tenant { get; } = tenant;
    public string Id { get; } = id;
    public Kubectl Kubectl { get; } = kubectl;

    public async ValueTask DisposeAsync()
    {
        Kubectl.Dispose();
        await RemoveEverythingOfAsync(Tenant);
    }

    /// <summary>Deletes the tenant's clusters and waits until every pod it had is stopped (its microVMs released).</summary>
    public static async Task RemoveEverythingOfAsync(TenantScope tenant)
    {
        // A cluster the spec deleted itself is DELETING or DELETED already: only the others are deleted here.
        var clusters = (await tenant.Gql("{ kubernetesClusters { id state } }")).ShouldSucceed().Data.GetProperty("kubernetesClusters").EnumerateArray()
            .Where(c => c.GetProperty("state").GetString() is not ("DELETING" or "DELETED")).Select(c => c.GetProperty("id").GetString()!).ToList();
        foreach (var cluster in clusters) (await tenant.Gql("mutation($id: ID!) { deleteKubernetesCluster(id: $id) { id } }", new { id = cluster })).ShouldSucceed();
        await Eventually.Until(async () =>
        {
            var pods = (await tenant.Gql("{ pods(first: 200) { nodes { state } } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("nodes").EnumerateArray();
            return pods.All(p => p.GetProperty("state").GetString() is "STOPPED");
        }, TimeSpan.FromSeconds(60), "every pod of the test's clusters stopped");
    }
}
