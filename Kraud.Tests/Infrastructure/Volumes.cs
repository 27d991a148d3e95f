using System.Text.Json;

namespace Kraud.Tests.Infrastructure;

public static class Volumes
{
    public const string Fields =
        "id name tenantId class sizeGiB zone state replicas { hostId state } desiredReplicas encrypted attachedTo version reason warnings createdAt";

    public static async Task<GqlResponse> TryCreateVolumeAsync(this TenantScope tenant, string name, string @class = "BLOCK", int sizeGiB = 10,
        string? zone = null) =>
        await tenant.Gql($"mutation($in: CreateVolumeInput!) {{ createVolume(input: $in) {{ {Fields} }} }}",
            new { @in = new { name, @class, sizeGiB, zone } });

    public static async Task<JsonElement> CreateVolumeAsync(this TenantScope tenant, string name, string @class = "BLOCK", int sizeGiB = 10,
        string? zone = null) =>
        (await tenant.TryCreateVolumeAsync(name, @class, sizeGiB, zone)).ShouldSucceed().Data.GetProperty("createVolume");

    public static async Task<JsonElement?> VolumeAsync(this TenantScope tenant, string id)
    {
        var v = (await tenant.Gql($"query($id: ID!) {{ volume(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("volume");
        return v.ValueKind == JsonValueKind.Null ? null : v;
    }

    /// <summary>Reads the volume, and again after each commit to its stream, until it is in the state.</summary>
    public static Task<JsonElement> WaitForVolumeAsync(this TenantScope tenant, string id, string state, int seconds = 30) =>
        tenant.WaitForVolumeAsync(id, v => v.State() == state, TimeSpan.FromSeconds(seconds), $"volume {id} is {state}");

    /// <summary>Reads the volume, and again after each commit to its stream (its view changes only then), until <paramref name="done"/>.</summary>
    public static Task<JsonElement> WaitForVolumeAsync(this TenantScope tenant, string id, Func<JsonElement, bool> done, TimeSpan timeout, string what) =>
        tenant.App.StreamCommits.UntilAsync(Guid.Parse(id), async () => (await tenant.VolumeAsync(id))!.Value, done, timeout, what);

    public static IReadOnlyList<string> ReplicaHosts(this JsonElement volume) =>
        volume.GetProperty("replicas").EnumerateArray().Select(r => r.GetProperty("hostId").GetString()!).ToList();

    public static async Task<JsonElement> CreatePodWithVolumeAsync(this TenantScope tenant, string name, string volumeId, string mountPath = "/data",
        int ephemeralGiB = 0, string? zone = null)
    {
        var r = await tenant.Gql($$"""
            mutation($in: CreatePodInput!) { createPod(input: $in) { {{Pods.Fields}} volumes { volumeId mountPath readOnly } } }
            """, new { @in = new { name, image = "postgres:16", cpu = 1, memoryMiB = 256, ephemeralGiB, zone, volumes = new[] { new { volumeId, mountPath } } } });
        return r.ShouldSucceed().Data.GetProperty("createPod");
    }
}
