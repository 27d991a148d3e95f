using System.Text.Json;
using Npgsql;

namespace Kraud.Tests.Infrastructure;

public static class Pods
{
    public const string Fields = "id name namespace tenantId image cpu memoryMiB replicas confidential state reason version createdAt instances { id podId hostId state bootMs startedAt ip6 ip4 }";

    public static async Task<JsonElement> CreatePodAsync(this TenantScope tenant, string name, int replicas = 1, int cpu = 1, int memoryMiB = 256,
        string image = "nginx:1.27", string? zone = null, bool confidential = false)
    {
        var r = await tenant.Gql($$"""
            mutation($in: CreatePodInput!) { createPod(input: $in) { {{Fields}} } }
            """, new { @in = new { name, image, cpu, memoryMiB, replicas, zone, confidential } });
        return r.ShouldSucceed().Data.GetProperty("createPod");
    }

    public static async Task<JsonElement?> PodAsync(this TenantScope tenant, string id)
    {
        var pod = (await tenant.Gql($"query($id: ID!) {{ pod(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("pod");
        return pod.ValueKind == JsonValueKind.Null ? null : pod;
    }

    /// <summary>Reads the pod, and again after each commit to its stream (its view changes only then), until it is in the state.</summary>
    public static Task<JsonElement> WaitForPodAsync(this TenantScope tenant, string id, string state, int seconds = 30) =>
        tenant.WaitForPodAsync(id, p => p.State() == state, TimeSpan.FromSeconds(seconds), $"pod {id} is {state}");

    public static Task<JsonElement> WaitForPodAsync(this TenantScope tenant, string id, Func<JsonElement, bool> done, TimeSpan timeout, string what) =>
        tenant.App.StreamCommits.UntilAsync(Guid.Parse(id), async () => (await tenant.PodAsync(id))!.Value, done, timeout, what);

    public static string State(this JsonElement pod) => pod.GetProperty("state").GetString()!;

    public static string Id(this JsonElement element) => element.GetProperty("id").GetString()!;

    public static IReadOnlyList<JsonElement> Instances(this JsonElement pod) => pod.GetProperty("instances").EnumerateArray().ToList();

    /// <summary>Events stamped with this tenant: what a refused command must leave unchanged.</summary>
    public static Task<long> EventCountAsync(this TenantScope tenant) =>
        SqlScalar.ScalarAsync(tenant.App.ConnectionString, "select count(*) from kraud.mt_events where headers ->> 'tenant' = $1", tenant.Id.ToString());
}

/// <summary>
/// The tenants one spec of a shared collection made. Disposed after the spec, whether it passed or not, it deletes their pods
/// and waits until they stopped: the collection's fleet is shared, and replicas a spec leaves running take the room that later
/// specs' placements (and the zones' N+2 reserve) count on.
/// </summary>
public sealed class SpecTenants(KraudApp app) : IAsyncLifetime
{
    private readonly List<TenantScope> _tenants = [];

    public async Task<TenantScope> NewAsync(string prefix = "t")
    {
        var tenant = await TenantScope.CreateAsync(app, prefix);
        lock (_tenants) _tenants.Add(tenant);
        return tenant;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var tenant in _tenants) await tenant.RemoveWorkloadsAsync();
    }
}
