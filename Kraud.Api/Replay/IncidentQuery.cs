using System.Globalization;
using System.Text.Json;
using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Fleet;
using Kraud.Projections.Ingresses;
using Kraud.Projections.Pods;
using Kraud.Projections.Replay;
using Kraud.Projections.Volumes;
using Marten;

namespace Kraud.Api.Replay;

public sealed record IncidentReport(DateTime From, DateTime To, IReadOnlyList<Guid> HostIds, IReadOnlyList<Guid> AffectedPods,
    IReadOnlyList<Guid> AffectedVolumes, IReadOnlyList<EventRecord> Events, IReadOnlyList<string> Summary);

/// <summary>
/// incident(hostId, from, to): the events of a host failure window and everything they caused, with a short summary a
/// person can read first: what failed, which pods moved where and how fast, which did not and why. Operators and
/// platform auditors only.
/// </summary>
public static class IncidentQuery
{
    public static void Map(Fields fields) => fields.Query("incident", async ctx =>
    {
        var principal = ctx.Caller().Principal;
        if (!principal.ReadsAllTenants)
            throw DomainException.Forbidden("Incident reports span tenants: operators and platform auditors only.");
        var from = ctx.Utc("from")!.Value;
        var to = ctx.Utc("to")!.Value;
        if (to < from) throw DomainException.Validation("to is before from.");
        await ctx.Service<ArchiveBoundary>().RequireFromAsync(from, $"The incident window from {from.UtcDateTime:O}", ctx.CancellationToken);
        var session = ctx.Service<IQuerySession>();
        var log = ctx.Service<EventLog>();

        var hostIds = ctx.GetArgument<string?>("hostId") is { } id
            ? [Ids.Parse(id, "Host")]
            : await FailedHostsAsync(session, await ctx.Service<PlatformCheckpointer>().Checkpoints.WindowAsync(from, to, includeFrom: true, ctx.CancellationToken),
                from, to, ctx.CancellationToken);
        var events = new SortedDictionary<long, EventRecord>();
        foreach (var host in hostIds)
            foreach (var e in await log.CausalClosureAsync(host, from, to, ctx.CancellationToken))
                events[e.Seq] = e;
        return await ReportAsync(session, from, to, hostIds, events.Values.ToList(), ctx.CancellationToken);
    });

    /// <summary>Hosts that failed in the window, read from the sequence numbers the checkpoints say can hold it.</summary>
    private static async Task<List<Guid>> FailedHostsAsync(IQuerySession session, SeqWindow window, DateTimeOffset from, DateTimeOffset to, CancellationToken ct) =>
        (await session.Events.QueryAllRawEvents()
            .Where(e => e.Sequence > window.Start && (e.Sequence <= window.ReadTo || e.Sequence > window.Tail))
            .Where(e => e.EventTypeName == "host_failed" && e.Timestamp >= from && e.Timestamp <= to)
            .Select(e => e.StreamId).ToListAsync(ct)).Distinct().ToList();

    private static async Task<IncidentReport> ReportAsync(IQuerySession session, DateTimeOffset from, DateTimeOffset to, IReadOnlyList<Guid> failedHosts,
        IReadOnlyList<EventRecord> events, CancellationToken ct)
    {
        var podIds = events.Where(e => e.Type.StartsWith("pod_", StringComparison.Ordinal)).Select(e => e.StreamId).Distinct().ToArray();
        var pods = podIds.Length == 0 ? [] : (await session.LoadManyAsync<PodView>(ct, podIds)).ToDictionary(p => p.Id);
        var hosts = (await session.Query<HostView>().ToListAsync(ct)).ToDictionary(h => h.Id, h => h.Name);
        string Host(Guid id) => hosts.GetValueOrDefault(id, id.ToString());
        string Pod(Guid id) => pods.TryGetValue(id, out var p) ? $"{p.Namespace}/{p.Name}" : id.ToString();
        var volumeIds = events.Where(e => e.Type.StartsWith("volume_", StringComparison.Ordinal)).Select(e => e.StreamId).Distinct().ToArray();
        var volumes = volumeIds.Length == 0 ? [] : (await session.LoadManyAsync<VolumeView>(ct, volumeIds)).ToDictionary(v => v.Id, v => v.Name);
        string Volume(Guid id) => volumes.GetValueOrDefault(id, id.ToString());
        var ingressIds = events.Where(e => e.Type.StartsWith("ingress_", StringComparison.Ordinal)).Select(e => e.StreamId).Distinct().ToArray();
        var ingresses = ingressIds.Length == 0 ? [] : (await session.LoadManyAsync<IngressView>(ct, ingressIds)).ToDictionary(i => i.Id, i => i.Name);
        string Ingress(Guid id) => ingresses.GetValueOrDefault(id, id.ToString());
        string ReplicaHost(JsonElement data, string name) => Prop(data, name) is { } r ? Str(r, "HostName") : "?";

        var summary = new List<string>();
        var failedAt = new Dictionary<Guid, DateTime>();
        var movedTo = new HashSet<Guid>();
        DateTime? lastRecovered = null;
        foreach (var e in events)
        {
            switch (e.Type)
            {
                case "host_failed":
                    failedAt[e.StreamId] = e.At;
                    summary.Add($"{Time(e.At)} host {Host(e.StreamId)} FAILED: {Str(e.Data, "Reason")}.");
                    break;
                case "host_recovered":
                    summary.Add($"{Time(e.At)} host {Host(e.StreamId)} was heard of again" +
                                (failedAt.TryGetValue(e.StreamId, out var f) ? $", {(e.At - f).TotalSeconds:F1} s after it failed." : "."));
                    break;
                case "pod_replica_lost":
                    summary.Add($"{Time(e.At)} pod {Pod(e.StreamId)} lost its microVM on {Host(Guid(e.Data, "HostId"))}; its ephemeral data is gone.");
                    break;
                case "pod_replica_failed" when failedHosts.Contains(Guid(e.Data, "HostId")):
                    summary.Add($"{Time(e.At)} pod {Pod(e.StreamId)} FAILED and was not rescheduled: {Str(e.Data, "Reason")}.");
                    break;
                case "pod_replica_scheduled":
                    movedTo.Add(Guid(e.Data, "HostId"));
                    summary.Add($"{Time(e.At)} pod {Pod(e.StreamId)} replica {Str(e.Data, "Replica")} placed again on {Str(e.Data, "HostName")}.");
                    break;
                case "volume_replica_lost":
                    summary.Add($"{Time(e.At)} volume {Volume(e.StreamId)} lost its replica on {Host(Guid(e.Data, "HostId"))}.");
                    break;
                case "volume_replica_scheduled" when failedAt.Count > 0:
                    movedTo.Add(Guid(e.Data, "HostId"));
                    summary.Add($"{Time(e.At)} volume {Volume(e.StreamId)} re-replicates to {Str(e.Data, "HostName")}.");
                    break;
                case "volume_placement_refused" when failedAt.Count > 0:
                    summary.Add($"{Time(e.At)} volume {Volume(e.StreamId)} could not be re-replicated: {Str(e.Data, "Reason")}");
                    break;
                case "volume_replica_healthy" when failedAt.Count > 0:
                    lastRecovered = e.At;
                    summary.Add($"{Time(e.At)} volume {Volume(e.StreamId)} has a healthy replica on {Host(Guid(e.Data, "HostId"))} again, " +
                                $"{(e.At - failedAt.Values.Min()).TotalSeconds:F1} s after the failure.");
                    break;
                case "ingress_replica_moved":
                    movedTo.Add(Guid(Prop(e.Data, "To")!.Value, "HostId"));
                    summary.Add($"{Time(e.At)} ingress {Ingress(e.StreamId)} moved its replica from {ReplicaHost(e.Data, "From")} to {ReplicaHost(e.Data, "To")}.");
                    break;
                case "ingress_replica_lost":
                    summary.Add($"{Time(e.At)} ingress {Ingress(e.StreamId)} lost its replica on {ReplicaHost(e.Data, "Replica")} and runs DEGRADED: {Str(e.Data, "Reason")}.");
                    break;
                case "ingress_replica_restored":
                    summary.Add($"{Time(e.At)} ingress {Ingress(e.StreamId)} runs its lost replica again on {ReplicaHost(e.Data, "Replica")}.");
                    break;
                case "pod_replica_running" when failedAt.Count > 0:
                    lastRecovered = e.At;
                    summary.Add($"{Time(e.At)} pod {Pod(e.StreamId)} runs again on {Host(Guid(e.Data, "HostId"))}, " +
                                $"{(e.At - failedAt.Values.Min()).TotalSeconds:F1} s after the failure.");
                    break;
            }
        }
        if (failedAt.Count == 0) summary.Add("No host failed in this window.");
        else if (lastRecovered is { } done)
            summary.Add($"Recovery took {(done - failedAt.Values.Min()).TotalSeconds:F1} s from the failure being detected to the last moved replica running.");
        else if (events.Any(e => e.Type is "pod_replica_lost" or "volume_replica_lost")) summary.Add("Not every lost replica runs again yet.");
        else summary.Add("No pod had to move.");

        return new IncidentReport(from.UtcDateTime, to.UtcDateTime, failedHosts.Concat(movedTo).Distinct().ToList(), podIds, volumeIds, events, summary);
    }

    private static string Time(DateTime at) => at.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);

    private static JsonElement? Prop(JsonElement data, string name)
    {
        foreach (var p in data.EnumerateObject())
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)) return p.Value;
        return null;
    }

    private static string Str(JsonElement data, string name) => Prop(data, name)?.ToString() ?? "?";

    private static Guid Guid(JsonElement data, string name) => System.Guid.TryParse(Str(data, name), out var id) ? id : System.Guid.Empty;
}
