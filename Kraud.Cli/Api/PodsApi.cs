using System.Text.Json;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Api;

public sealed record MicroVm(string Id, string HostId, string State, double? BootMs, string? Ip4, string? Ip6, DateTime? StartedAt);

public sealed record PodVolume(string VolumeId, string MountPath, bool ReadOnly);

public sealed record Pod(string Id, string Name, string Namespace, string Image, IReadOnlyList<string>? Command, JsonElement? Env, int Cpu,
    int MemoryMiB, int Replicas, bool Confidential, string State, string? Reason, int Version, DateTime CreatedAt,
    IReadOnlyList<MicroVm> Instances, IReadOnlyList<PodVolume> Volumes);

/// <summary>One line of a pod's workload log, as GET /api/pods/{id}/logs streams it.</summary>
public sealed record PodLogLine(DateTime At, string MicroVmId, int Replica, string Stream, string Line);

public sealed record PageInfo(bool HasNextPage, string? EndCursor);

public sealed record PodConnection(IReadOnlyList<Pod> Nodes, PageInfo PageInfo, int TotalCount);

public static class PodsApi
{
    private const string Fields = """
        id name namespace image command env cpu memoryMiB replicas confidential state reason version createdAt
        instances { id hostId state bootMs ip4 ip6 startedAt } volumes { volumeId mountPath readOnly }
        """;

    public static readonly Operation<PodConnection> List = new("pods", $$"""
        query Pods($namespace: String, $first: Int, $after: String) {
          pods(namespace: $namespace, first: $first, after: $after) { nodes { {{Fields}} } pageInfo { hasNextPage endCursor } totalCount }
        }
        """);

    public static readonly Operation<Pod?> Get = new("pod", $$"""
        query Pod($id: ID!) { pod(id: $id) { {{Fields}} } }
        """);

    public static readonly Operation<Pod> Create = new("createPod", $$"""
        mutation CreatePod($input: CreatePodInput!) { createPod(input: $input) { {{Fields}} } }
        """);

    public static readonly Operation<Pod> Scale = new("scalePod", $$"""
        mutation ScalePod($id: ID!, $replicas: Int!, $expectedVersion: Int) {
          scalePod(id: $id, replicas: $replicas, expectedVersion: $expectedVersion) { {{Fields}} }
        }
        """);

    public static readonly Operation<Pod> Restart = new("restartPod", $$"""
        mutation RestartPod($id: ID!) { restartPod(id: $id) { {{Fields}} } }
        """);

    public static readonly Operation<Pod> Delete = new("deletePod", $$"""
        mutation DeletePod($id: ID!, $expectedVersion: Int) { deletePod(id: $id, expectedVersion: $expectedVersion) { {{Fields}} } }
        """);

    /// <summary>Every pod (of a namespace), page after page.</summary>
    public static async Task<List<Pod>> AllAsync(CommandContext c, string? @namespace)
    {
        var all = new List<Pod>();
        string? after = null;
        do
        {
            var page = await c.RunAsync(List, new { @namespace, first = 100, after });
            all.AddRange(page.Nodes);
            after = page.PageInfo.HasNextPage ? page.PageInfo.EndCursor : null;
        } while (after is not null);
        return all;
    }

    /// <summary>A pod by id, or by name (in a namespace) as people type it.</summary>
    public static async Task<Pod> FindAsync(CommandContext c, string idOrName, string? @namespace)
    {
        if (Guid.TryParse(idOrName, out _))
            return await c.RunAsync(Get, new { id = idOrName }) ?? throw new KraudApiException("NOT_FOUND", $"No pod {idOrName}.");
        var matches = (await AllAsync(c, @namespace)).Where(p => p.Name == idOrName && p.State != "STOPPED").ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new KraudApiException("NOT_FOUND", $"No pod named {idOrName}{(@namespace is null ? "" : $" in namespace {@namespace}")}."),
            _ => throw new CliException($"{matches.Count} pods are named {idOrName} (in namespaces {string.Join(", ", matches.Select(m => m.Namespace))}): give --namespace or the id."),
        };
    }

    public static bool Settled(Pod p) => p.State is "RUNNING" or "FAILED" or "UNSCHEDULABLE" or "STOPPED";
}
