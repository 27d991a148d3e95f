using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Api;

public sealed record Replica(string HostId, string State);

public sealed record Volume(string Id, string Name, string Class, int SizeGiB, string? Zone, string State, IReadOnlyList<Replica> Replicas,
    int DesiredReplicas, bool Encrypted, IReadOnlyList<string> AttachedTo, int Version);

public sealed record VolumeConnection(IReadOnlyList<Volume> Nodes, PageInfo PageInfo, int TotalCount);

public static class VolumesApi
{
    private const string Fields = "id name class sizeGiB zone state replicas { hostId state } desiredReplicas encrypted attachedTo version";

    public static readonly Operation<VolumeConnection> List = new("volumes", $$"""
        query Volumes($first: Int, $after: String) {
          volumes(first: $first, after: $after) { nodes { {{Fields}} } pageInfo { hasNextPage endCursor } totalCount }
        }
        """);

    public static readonly Operation<Volume?> Get = new("volume", $$"""query Volume($id: ID!) { volume(id: $id) { {{Fields}} } }""");

    public static readonly Operation<Volume> Create = new("createVolume", $$"""
        mutation CreateVolume($input: CreateVolumeInput!) { createVolume(input: $input) { {{Fields}} } }
        """);

    public static readonly Operation<Volume> Attach = new("attachVolume", $$"""
        mutation AttachVolume($volumeId: ID!, $podId: ID!, $mountPath: String!) {
          attachVolume(volumeId: $volumeId, podId: $podId, mountPath: $mountPath) { {{Fields}} }
        }
        """);

    public static readonly Operation<Volume> Detach = new("detachVolume", $$"""
        mutation DetachVolume($volumeId: ID!, $podId: ID!) { detachVolume(volumeId: $volumeId, podId: $podId) { {{Fields}} } }
        """);

    public static readonly Operation<Volume> Delete = new("deleteVolume", $$"""mutation DeleteVolume($id: ID!) { deleteVolume(id: $id) { {{Fields}} } }""");

    public static async Task<List<Volume>> AllAsync(CommandContext c)
    {
        var all = new List<Volume>();
        string? after = null;
        do
        {
            var page = await c.RunAsync(List, new { first = 100, after });
            all.AddRange(page.Nodes);
            after = page.PageInfo.HasNextPage ? page.PageInfo.EndCursor : null;
        } while (after is not null);
        return all;
    }

    public static async Task<Volume> FindAsync(CommandContext c, string idOrName)
    {
        if (Guid.TryParse(idOrName, out _))
            return await c.RunAsync(Get, new { id = idOrName }) ?? throw new KraudApiException("NOT_FOUND", $"No volume {idOrName}.");
        return (await AllAsync(c)).SingleOrDefault(v => v.Name == idOrName && v.State != "DELETED")
               ?? throw new KraudApiException("NOT_FOUND", $"No volume named {idOrName}.");
    }
}
