using System.Text.Json;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Kraud.Tests.Console;

/// <summary>
/// The console and the CLI against a Kraud whose log was cut by an archive removal. A removal cuts the log for every later
/// read, so it gets an application of its own (a real listener: the browser and the CLI process need a socket).
/// </summary>
public sealed class ArchivedLogApp : ConsoleApp
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        // A checkpoint every few events, and one for whatever waits a second: a removal ends at a checkpoint.
        ("Replay:CheckpointEveryEvents", "10"),
        ("Replay:CheckpointEveryMinutes", "0.01"),
    ];
}

[CollectionDefinition(Name)]
public sealed class ArchivedLogCollection : ICollectionFixture<ArchivedLogApp>
{
    public const string Name = "Kraud console and CLI after an archive removal";
}

/// <summary>Where a person asks for a timeline that starts at the archive boundary, the console and the CLI say so and name the archives.</summary>
[Collection(ArchivedLogCollection.Name)]
public sealed class ArchivedTimelineSpecs(ArchivedLogApp app) : IDisposable
{
    private readonly KraudCli _cli = new();

    private sealed record Removal(ConsoleTenant Tenant, string Live, DateTime Early, DateTime RemovedBefore, string File);

    /// <summary>
    /// A pod created before an archive written with removeFromLog (a deleted one beside it, so that the removal takes
    /// events out of the log), then scaled after it: its timeline answers from the boundary on.
    /// </summary>
    private async Task<Removal> RemoveAnArchiveUnderARunningPodAsync()
    {
        var early = DateTime.UtcNow;
        var tenant = await ConsoleTenant.CreateAsync(app, "archived");
        var ended = (await tenant.CreatePodAsync("ended")).Id();
        await tenant.WaitForPodAsync(ended, p => p.State() == "RUNNING", "the pod to delete runs");
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = ended })).ShouldSucceed();
        await tenant.WaitForPodAsync(ended, p => p.State() == "STOPPED", "the deleted pod stopped");
        var live = (await tenant.CreatePodAsync("live")).Id();
        await tenant.WaitForPodAsync(live, p => p.State() == "RUNNING", "the live pod runs");

        var store = app.Services.GetRequiredService<IDocumentStore>();
        await store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        await using (var db = new NpgsqlConnection(app.ConnectionString))
        {
            await db.OpenAsync();
            var last = await db.ScalarAsync($"select max(seq_id) from kraud.mt_events where stream_id in ('{ended}', '{live}')");
            await Eventually.Until(async () => await db.ScalarAsync("select coalesce(max(seq), 0) from kraud.replay_checkpoints") >= last,
                TimeSpan.FromSeconds(30), "a checkpoint covers both pods");
        }
        (await app.AsOperator("mutation { signAuditDigest { seq } }")).ShouldSucceed();
        await Task.Delay(10); // the signed head's entry is older than the instant archived up to
        var archive = (await app.AsOperator("mutation($b: DateTime) { archiveEvents(before: $b, removeFromLog: true) { file removedEvents removedBefore } }",
            new { b = DateTime.UtcNow })).ShouldSucceed().Data.GetProperty("archiveEvents");
        Assert.True(archive.GetProperty("removedEvents").GetInt64() > 0, archive.ToString());

        (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 2) { version } }", new { id = live })).ShouldSucceed();
        await tenant.WaitForPodAsync(live, p => p.Instances().Count(i => i.State() == "RUNNING") == 2, "the pod runs two replicas");
        return new Removal(tenant, live, early, archive.GetProperty("removedBefore").GetDateTime().ToUniversalTime(),
            Path.GetFileName(archive.GetProperty("file").GetString()!));
    }

    [Fact]
    public async Task the_pod_timeline_in_the_console_says_it_starts_at_the_boundary_and_names_the_archive_of_the_rest()
    {
        var removal = await RemoveAnArchiveUnderARunningPodAsync();
        var fresh = (await removal.Tenant.CreatePodAsync("fresh")).Id();
        await removal.Tenant.WaitForPodAsync(fresh, p => p.State() == "RUNNING", "the pod created after the boundary runs");
        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(removal.Tenant.Token);

        await page.OpenAsync($"pods/{removal.Live}");
        await page.WaitForAsync(".page-head .badge[data-state=RUNNING]");
        await page.Page.ClickAsync("[data-tab=timeline]");
        await page.WaitForAsync("[data-testid=timeline] tr[data-event=pod_scaled]");
        var note = await page.TextAsync("[data-testid=timeline-archived]");
        Assert.Contains("answers the timeline", note, StringComparison.Ordinal);
        Assert.Contains(removal.File, note, StringComparison.Ordinal);
        Assert.Equal(1, await page.CountAsync($"[data-testid=timeline-archived] li[data-archive$='{removal.File}']"));
        // The pod's own first events are before the boundary: the window the log answers whole starts after them.
        Assert.Equal(0, await page.CountAsync("[data-testid=timeline] tr[data-event=pod_requested]"));
        await page.ScreenshotAsync("timeline-archived");

        // A pod younger than the boundary has its whole timeline in the log: no note.
        await page.OpenAsync($"pods/{fresh}");
        await page.WaitForAsync(".page-head .badge[data-state=RUNNING]");
        await page.Page.ClickAsync("[data-tab=timeline]");
        await page.WaitForAsync("[data-testid=timeline] tr[data-event=pod_requested]");
        Assert.Equal(0, await page.CountAsync("[data-testid=timeline-archived]"));
        page.ShouldHaveLoggedNoErrors();
    }

    [Fact]
    public async Task kraud_timeline_prints_the_archive_note_before_the_events_and_keeps_json_on_stdout_for_scripts()
    {
        var removal = await RemoveAnArchiveUnderARunningPodAsync();
        (await _cli.RunAsync("login", "--url", app.BaseAddress.ToString(), "--token", removal.Tenant.Token)).ShouldSucceed();

        var table = (await _cli.RunAsync("timeline", removal.Live)).ShouldSucceed().Stdout;
        var note = table.IndexOf("note: The log answers the timeline of " + removal.Live, StringComparison.Ordinal);
        Assert.True(note >= 0, table);
        Assert.True(note < table.IndexOf("pod_scaled", StringComparison.Ordinal), $"the note comes before the events:\n{table}");
        Assert.DoesNotContain("pod_requested", table);
        Assert.Contains("ARCHIVE", table);
        Assert.Contains(removal.File, table[table.IndexOf("ARCHIVE", StringComparison.Ordinal)..]);

        var json = (await _cli.RunAsync("timeline", removal.Live, "-o", "json")).ShouldSucceed();
        var events = JsonDocument.Parse(json.Stdout).RootElement.EnumerateArray().ToList();
        Assert.Contains(events, e => e.GetProperty("type").GetString() == "pod_scaled");
        Assert.Contains(removal.File, json.Stderr);

        // From an instant after the boundary the log answers the whole window: nothing to note.
        var later = (await _cli.RunAsync("timeline", removal.Live, "--from", removal.RemovedBefore.AddMilliseconds(1).ToString("O"))).ShouldSucceed();
        Assert.Contains("pod_scaled", later.Stdout);
        Assert.DoesNotContain("note:", later.Stdout + later.Stderr);
        Assert.DoesNotContain("ARCHIVE", later.Stdout);
        // From before it the log cannot answer: the API's refusal names the archive.
        var refused = await _cli.RunAsync("timeline", removal.Live, "--from", removal.Early.ToString("O"));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("ARCHIVE_REQUIRED", refused.Stderr);
        Assert.Contains(removal.File, refused.Stderr);
    }

    public void Dispose() => _cli.Dispose();
}
