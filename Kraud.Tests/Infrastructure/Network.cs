using System.Text.Json;

namespace Kraud.Tests.Infrastructure;

public static class Network
{
    public const string VpcFields = "id tenantId ipv6Prefix ipv4Overlay encryption peers { hostId publicKey endpoint allowedIps } " +
                                    "namespaces { name ipv4Cidr ipv6Cidr } dns { name namespace qualifiedName ip4 ip6 }";

    public static async Task<JsonElement> VpcAsync(this TenantScope tenant) =>
        Assert.Single((await tenant.Gql($"{{ vpcs {{ {VpcFields} }} }}")).ShouldSucceed().Data.GetProperty("vpcs").EnumerateArray());

    public static async Task<JsonElement?> PeerSetAsync(this KraudApp app, string hostId)
    {
        var set = (await app.AsOperator("query($h: ID!) { wireguardPeers(hostId: $h) { hostId revision appliedRevision peers { hostId publicKey endpoint allowedIps } } }",
            new { h = hostId })).ShouldSucceed().Data.GetProperty("wireguardPeers");
        return set.ValueKind == JsonValueKind.Null ? null : set;
    }

    public static IEnumerable<string> Addresses(this JsonElement vm) => [$"{vm.GetProperty("ip4").GetString()}/32", $"{vm.GetProperty("ip6").GetString()}/128"];

    /// <summary>Tests of the shared fleet give their capacity back, so that later specs (drains, N+2) find the room they expect.</summary>
    public static async Task DeletePodsAsync(this TenantScope tenant)
    {
        var pods = (await tenant.Gql("{ pods(first: 500) { nodes { id state } } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("nodes").EnumerateArray();
        foreach (var pod in pods.Where(p => p.State() is not ("STOPPING" or "STOPPED")))
            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
    }

    public static string HostId(this JsonElement element) => element.GetProperty("hostId").GetString()!;
}
