using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;
using Spectre.Console;

namespace Kraud.Cli.Commands;

/// <summary>
/// Waits until pods run (or fail): on a terminal a live table of every replica's state; elsewhere silence until the end.
/// A pod that ends FAILED or UNSCHEDULABLE ends the wait with its reason.
/// </summary>
public static class PodWait
{
    public static async Task<IReadOnlyList<Pod>> UntilRunningAsync(CommandContext c, IReadOnlyList<string> podIds, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var pods = await PollAsync(c, podIds);
        if (c.Output.IsTerminal)
        {
            await c.Output.Console.Live(Render(pods)).AutoClear(false).StartAsync(async live =>
            {
                while (!Done(pods) && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(400, c.Cancellation);
                    pods = await PollAsync(c, podIds);
                    live.UpdateTarget(Render(pods));
                }
            });
        }
        else
        {
            while (!Done(pods) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(400, c.Cancellation);
                pods = await PollAsync(c, podIds);
            }
        }
        if (pods.FirstOrDefault(p => p.State is "FAILED" or "UNSCHEDULABLE") is { } failed)
            throw new KraudApiException(failed.State, $"pod {failed.Name}: {failed.Reason ?? FailedReplicaReason(failed) ?? "no reason given"}");
        if (!Done(pods))
            throw new KraudApiException("TIMEOUT", $"not running after {timeout.TotalSeconds:0}s: " +
                string.Join(", ", pods.Where(p => !Running(p)).Select(p => $"{p.Name} is {p.State}")));
        return pods;
    }

    private static async Task<List<Pod>> PollAsync(CommandContext c, IReadOnlyList<string> ids)
    {
        var pods = new List<Pod>();
        foreach (var id in ids)
            pods.Add(await c.RunAsync(PodsApi.Get, new { id }) ?? throw new KraudApiException("NOT_FOUND", $"pod {id} is gone"));
        return pods;
    }

    public static bool Running(Pod p) => p.State == "RUNNING" && p.Instances.Count(i => i.State == "RUNNING") >= p.Replicas;

    private static bool Done(IEnumerable<Pod> pods) => pods.All(p => Running(p) || p.State is "FAILED" or "UNSCHEDULABLE");

    private static string? FailedReplicaReason(Pod p) => p.Instances.FirstOrDefault(i => i.State == "FAILED") is { } i ? $"microVM {i.Id} on host {i.HostId} failed" : null;

    private static Table Render(IEnumerable<Pod> pods)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("POD", "REPLICA", "HOST", "STATE", "BOOT");
        foreach (var p in pods)
        {
            if (p.Instances.Count == 0)
                table.AddRow(Markup.Escape(p.Name), "-", "-", Coloured(p.State), Markup.Escape(p.Reason ?? ""));
            var n = 0;
            foreach (var i in p.Instances)
                table.AddRow(Markup.Escape(p.Name), (++n).ToString(CultureInfo.InvariantCulture), Markup.Escape(i.HostId[..8]), Coloured(i.State),
                    i.BootMs is { } ms ? $"{ms:0} ms" : "");
            if (p.State is "FAILED" or "UNSCHEDULABLE" && p.Reason is { } reason)
                table.AddRow(Markup.Escape(p.Name), "", "", Coloured(p.State), Markup.Escape(reason));
        }
        return table;
    }

    private static string Coloured(string state) =>
        Output.StateColour(state) is { } colour ? $"[{colour}]{Markup.Escape(state)}[/]" : Markup.Escape(state);
}
