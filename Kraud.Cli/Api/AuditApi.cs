using System.Text.Json;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Api;

public sealed record AuditEntry(long Seq, DateTime At, string? TenantId, string Actor, string Action, string? ResourceId, string Outcome,
    string? CorrelationId, string Hash, string PreviousHash);

public sealed record AuditConnection(IReadOnlyList<AuditEntry> Nodes, PageInfo PageInfo, int TotalCount);

public sealed record AuditVerification(bool Valid, int Entries, long? FirstBrokenSeq, string HeadHash);

public sealed record EventRecord(long Seq, DateTime At, string StreamId, int Version, string Type, JsonElement Data, string? Actor, string? CorrelationId);

/// <summary>An archive a timeline names: the file, the sequence numbers it holds, and the instant before which they left the log.</summary>
public sealed record TimelineArchive(string File, long FromSeq, long ToSeq, DateTime? RemovedBefore);

public sealed record IncidentReport(DateTime From, DateTime To, IReadOnlyList<string> HostIds, IReadOnlyList<string> AffectedPods,
    IReadOnlyList<string> AffectedVolumes, IReadOnlyList<EventRecord> Events, IReadOnlyList<string> Summary);

public sealed record SnapshotHost(string Id, string Name, string Zone, string Role, string State);

public sealed record SnapshotPod(string Id, string Name, string Namespace, string State, int Replicas);

public sealed record SnapshotVolume(string Id, string Name, string State);

public sealed record SnapshotIngress(string Id, string Name, string Kind, string State);

public sealed record PlatformSnapshot(DateTime AsOf, IReadOnlyList<SnapshotHost> Hosts, IReadOnlyList<SnapshotPod> Pods,
    IReadOnlyList<SnapshotVolume> Volumes, IReadOnlyList<SnapshotIngress> Ingresses);

public sealed record RebuildJob(string Name, string State, int EventsProcessed);

public static class AuditApi
{
    private const string Entry = "seq at tenantId actor action resourceId outcome correlationId hash previousHash";
    private const string Event = "seq at streamId version type data actor correlationId";

    public static readonly Operation<AuditConnection> Log = new("auditLog", $$"""
        query AuditLog($from: DateTime, $to: DateTime, $tenantId: ID, $first: Int, $after: String) {
          auditLog(from: $from, to: $to, tenantId: $tenantId, first: $first, after: $after) { nodes { {{Entry}} } pageInfo { hasNextPage endCursor } totalCount }
        }
        """);

    public static readonly Operation<AuditVerification> Verify = new("verifyAuditChain", """
        query VerifyAuditChain($tenantId: ID) { verifyAuditChain(tenantId: $tenantId) { valid entries firstBrokenSeq headHash } }
        """);

    /// <summary>The timeline, and the archives that hold what the log no longer answers of its window (none while it answers all).</summary>
    public static readonly Operation<IReadOnlyList<EventRecord>> Timeline = new("timeline", $$"""
        query Timeline($resourceId: ID!, $from: DateTime, $to: DateTime) {
          timeline(resourceId: $resourceId, from: $from, to: $to) { {{Event}} }
          timelineArchives(resourceId: $resourceId, from: $from) { file fromSeq toSeq removedBefore }
        }
        """);

    public static readonly Operation<IncidentReport> Incident = new("incident", $$"""
        query Incident($hostId: ID, $from: DateTime!, $to: DateTime!) {
          incident(hostId: $hostId, from: $from, to: $to) { from to hostIds affectedPods affectedVolumes summary events { {{Event}} } }
        }
        """);

    public static readonly Operation<PlatformSnapshot> PlatformAt = new("platformAt", """
        query PlatformAt($asOf: DateTime!) {
          platformAt(asOf: $asOf) { asOf hosts { id name zone role state } pods { id name namespace state replicas }
            volumes { id name state } ingresses { id name kind state } }
        }
        """);

    public static readonly Operation<RebuildJob> Rebuild = new("rebuildProjection", """
        mutation RebuildProjection($name: String!) { rebuildProjection(name: $name) { name state eventsProcessed } }
        """);

    public static readonly Operation<RebuildJob?> RebuildProgress = new("rebuildJob", """
        query RebuildJob($name: String!) { rebuildJob(name: $name) { name state eventsProcessed } }
        """);
}
