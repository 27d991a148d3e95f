using System.CommandLine;
using System.Text.Json;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;
using Spectre.Console;

namespace Kraud.Cli.Commands;

/// <summary>kraud timeline, kraud incident, kraud platform-at, kraud rebuild</summary>
public static class ReplayCommands
{
    private static readonly Column<EventRecord>[] EventColumns =
    [
        new("SEQ", e => e.Seq.ToString(CultureInfo.InvariantCulture)), new("AT", e => Output.Time(e.At)), new("STREAM", e => e.StreamId), new("V", e => e.Version.ToString(CultureInfo.InvariantCulture)),
        new("TYPE", e => e.Type), new("ACTOR", e => e.Actor),
    ];

    public static Command Timeline()
    {
        var id = new Argument<string>("id") { Description = "A pod, volume, host or ingress id" };
        var from = new Option<DateTime?>("--from") { Description = "From this instant" };
        var to = new Option<DateTime?>("--to") { Description = "Up to this instant" };
        var cmd = new Command("timeline", "Every event of a resource and of what it caused").With(id, from, to);
        cmd.Does(async c =>
        {
            var answer = await c.Client.AnswerAsync(AuditApi.Timeline, new { resourceId = c.Get(id), from = c.Get(from), to = c.Get(to) }, c.Cancellation);
            // Said before the events, since it changes what they mean (the window starts at the boundary, not at the
            // resource's beginning); on JSON or YAML the note goes to stderr and stdout stays the list scripts read.
            if (ArchiveNote(answer.Extensions) is { } note) c.Output.Note($"[yellow]note:[/] {Markup.Escape(note)}");
            c.Output.List(answer.Value, EventColumns);
            var archives = answer.Data.GetProperty("timelineArchives").Deserialize<List<TimelineArchive>>(KraudClient.Json)!;
            if (archives.Count > 0 && c.Output.Format == OutputFormat.Table)
                c.Output.List(archives, new Column<TimelineArchive>("ARCHIVE", a => a.File), new("EVENTS", a => $"{a.FromSeq}-{a.ToSeq}"),
                    new("LEFT THE LOG BEFORE", a => Output.Time(a.RemovedBefore)));
        });
        return cmd;
    }

    /// <summary>The API's note on a timeline that answers from the archive boundary on (extensions.archived.timeline), if any.</summary>
    private static string? ArchiveNote(JsonElement extensions) =>
        extensions.ValueKind == JsonValueKind.Object && extensions.TryGetProperty("archived", out var archived)
        && archived.TryGetProperty("timeline", out var timeline) && timeline.TryGetProperty("message", out var message)
            ? message.GetString()
            : null;

    public static Command Incident()
    {
        var host = new Option<string?>("--host") { Description = "The host's id" };
        var from = new Option<DateTime>("--from") { Description = "Start of the window", Required = true };
        var to = new Option<DateTime>("--to") { Description = "End of the window", Required = true };
        var cmd = new Command("incident", "What happened to a host and what it took with it").With(host, from, to);
        cmd.Does(async c =>
        {
            var report = await c.RunAsync(AuditApi.Incident, new { hostId = c.Get(host), from = c.Get(from), to = c.Get(to) });
            if (c.Output.Format != OutputFormat.Table)
            {
                c.Output.Structured(report);
                return;
            }
            foreach (var line in report.Summary) c.Output.Console.WriteLine(line);
            c.Output.Console.WriteLine($"hosts {report.HostIds.Count}, pods affected {report.AffectedPods.Count}, volumes affected {report.AffectedVolumes.Count}");
            c.Output.List(report.Events, EventColumns);
        });
        return cmd;
    }

    public static Command PlatformAt()
    {
        var at = new Argument<DateTime>("time") { Description = "The instant (ISO-8601, UTC)" };
        var cmd = new Command("platform-at", "The whole visible platform as it was at one instant").With(at);
        cmd.Does(async c =>
        {
            var s = await c.RunAsync(AuditApi.PlatformAt, new { asOf = c.Get(at).ToUniversalTime() });
            if (c.Output.Format != OutputFormat.Table)
            {
                c.Output.Structured(s);
                return;
            }
            c.Output.Console.WriteLine($"as of {Output.Time(s.AsOf)}: {s.Hosts.Count} hosts, {s.Pods.Count} pods, {s.Volumes.Count} volumes, {s.Ingresses.Count} ingresses");
            c.Output.List(s.Hosts, new Column<SnapshotHost>("HOST", h => h.Name), new("ZONE", h => h.Zone), new("ROLE", h => h.Role), new("STATE", h => h.State));
            c.Output.List(s.Pods, new Column<SnapshotPod>("POD", p => p.Name), new("NAMESPACE", p => p.Namespace), new("STATE", p => p.State),
                new("REPLICAS", p => p.Replicas.ToString(CultureInfo.InvariantCulture)), new("ID", p => p.Id));
            if (s.Volumes.Count > 0) c.Output.List(s.Volumes, new Column<SnapshotVolume>("VOLUME", v => v.Name), new("STATE", v => v.State), new("ID", v => v.Id));
            if (s.Ingresses.Count > 0) c.Output.List(s.Ingresses, new Column<SnapshotIngress>("INGRESS", i => i.Name), new("KIND", i => i.Kind), new("STATE", i => i.State));
        });
        return cmd;
    }

    public static Command Rebuild()
    {
        var name = new Argument<string>("projection") { Description = "The projection, e.g. AuditChain" };
        var cmd = new Command("rebuild", "Rebuild a projection from the event log while Kraud serves (operators)").With(name);
        cmd.Does(async c =>
        {
            var job = await c.RunAsync(AuditApi.Rebuild, new { name = c.Get(name) });
            async Task<RebuildJob> PollAsync(Action<RebuildJob> shown)
            {
                while (job.State == "RUNNING")
                {
                    await Task.Delay(250, c.Cancellation);
                    job = await c.RunAsync(AuditApi.RebuildProgress, new { name = c.Get(name) }) ?? job;
                    shown(job);
                }
                return job;
            }
            if (c.Output.IsTerminal)
                await c.Output.Console.Status().StartAsync($"rebuilding {c.Get(name)}…",
                    async status => await PollAsync(j => status.Status($"rebuilding {j.Name}: {j.EventsProcessed} events processed")));
            else await PollAsync(_ => { });
            if (job.State != "COMPLETED") throw new KraudApiException("REBUILD_FAILED", $"{job.Name}: {job.State}");
            c.Output.Done(job, $"rebuilt {job.Name}: {job.EventsProcessed} events processed");
        });
        return cmd;
    }
}
