using System.Diagnostics;
using Alba;
using Kraud.Api.Health;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

/// <summary>Several control-plane nodes on one PostgreSQL: what must happen once is held by one node, and moves when it stops.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterSpecs(ClusterApp app, Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>What the issue names as run once, and the mesh's repair round (retries, back-offs and rollouts are scheduled messages, held by nobody).</summary>
    private static readonly string[] RunOnce = ["leader", "scheduler", "volume-scheduler", "failure-detection", "audit-digests", "mesh-repair", "scheduler-repair"];

    private static Task<IReadOnlyList<NodeStatus>> SettledAsync(IAlbaHost node, int nodes, TimeSpan? within = null) =>
        SettledAsync(node, nodes, within ?? TimeSpan.FromSeconds(30), null);

    /// <summary>Waits until the cluster has this many nodes (among them <paramref name="including"/>), each run-once role held by one.</summary>
    private static async Task<IReadOnlyList<NodeStatus>> SettledAsync(IAlbaHost node, int nodes, TimeSpan within, string? including) =>
        (await Eventually.Get(() => ClusterApp.HealthAsync(node),
            h => h.Nodes!.Count == nodes && (including is null || h.Nodes!.Any(n => n.Id == including && n.Roles.Count > 0))
                                     && RunOnce.All(r => h.Nodes!.Count(n => n.Roles.Contains(r)) == 1)
                                     && h.Nodes!.Any(ClusterView.RunsProjections),
            within > TimeSpan.Zero ? within : TimeSpan.Zero, $"{nodes} nodes hold every run-once role once")).Nodes!;

    private static Task<GqlResponse> Gql(IAlbaHost node, string token, string query, object? variables = null) => node.GraphQL(token, query, variables);

    [Fact]
    public async Task two_nodes_hold_each_role_once_and_health_lists_both_under_their_names()
    {
        var b = await app.StartNodeAsync("b");
        try
        {
            var nodes = await SettledAsync(b, app.Nodes.Count);
            Assert.Equal(app.Nodes.Select(n => n.Name).Order(), nodes.Select(n => n.Id).Order());
            foreach (var role in RunOnce) Assert.Single(nodes, n => n.Roles.Contains(role));
            var fromA = await ClusterApp.HealthAsync(app.Nodes[0].Host);
            Assert.Equal("healthy", fromA.Status);
            Assert.Equal(app.Nodes[0].Name, fromA.Node);
            Assert.True(fromA.AsyncDaemon);
            Assert.Contains(fromA.Handovers!, h => h is { Change: "started", Role: "scheduler" });
        }
        finally
        {
            await app.StopNodeAsync(b);
        }
        // The one node left takes over what the other held.
        var alone = await SettledAsync(app.Host, 1);
        Assert.Equal(app.Nodes[0].Name, Assert.Single(alone).Id);
    }

    [Fact]
    public async Task a_scheduler_batch_places_only_on_the_node_its_assignment_names_and_a_handover_waits_for_the_batch_to_commit()
    {
        var f = await app.StartNodeAsync("f");
        try
        {
            // The leader may still move the scheduler while the new node settles in (a rebalance): then the spec asks again.
            for (var attempt = 1; ; attempt++)
            {
                var nodes = await SettledAsync(f, app.Nodes.Count);
                var holderName = nodes.Single(n => n.Roles.Contains("scheduler")).Id;
                var holder = app.Nodes.Single(n => n.Name == holderName).Host;
                var (otherName, other) = app.Nodes.First(n => n.Name != holderName);

                string? otherMark;
                await using (var refused = other.Services.GetRequiredService<Marten.IDocumentStore>().LightweightSession())
                    otherMark = await FenceAsync(other, refused, otherName);

                await using var batch = holder.Services.GetRequiredService<Marten.IDocumentStore>().LightweightSession();
                if (otherMark is not null || await FenceAsync(holder, batch, holderName) is not { } mark)
                {
                    Assert.True(attempt < 3, $"{holderName} held the scheduler on /health, but the assignment row named {(otherMark is null ? "nobody" : otherName)}");
                    continue;
                }
                Assert.StartsWith(holderName + " ", mark);
                // A handover writes the scheduler's assignment row: while the holder's batch is open it cannot.
                var handover = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => TouchSchedulerAssignmentAsync());
                Assert.Equal("55P03", handover.SqlState);
                await batch.DisposeAsync();
                // Committed, the batch holds nothing: the write goes through (the row is gone when the leader moved the
                // scheduler meanwhile, which waited for the batch too).
                Assert.InRange(await TouchSchedulerAssignmentAsync(), 0, 1);
                return;
            }
        }
        finally
        {
            await app.StopNodeAsync(f);
        }
    }

    /// <summary>A scheduler batch's fence on this node (with no requests, so a refusal sends nothing back).</summary>
    private static Task<string?> FenceAsync(IAlbaHost node, Marten.IDocumentSession session, string name)
    {
        var runtime = node.Services.GetRequiredService<Wolverine.Runtime.IWolverineRuntime>();
        return Kraud.Api.Common.SchedulerFence.HoldAsync(session, new Wolverine.Runtime.MessageContext(runtime), runtime, name, Kraud.Api.Common.SchedulerQueue.Name,
            Array.Empty<Kraud.Api.Common.SchedulePod>());
    }

    /// <summary>Writes the scheduler's assignment row as a handover would (and rolls back), giving up after 300 ms of waiting.</summary>
    private async Task<int> TouchSchedulerAssignmentAsync()
    {
        await using var db = new Npgsql.NpgsqlConnection(app.ConnectionString);
        await db.OpenAsync();
        await using var tx = await db.BeginTransactionAsync();
        await using (var timeout = new Npgsql.NpgsqlCommand("set local lock_timeout = '300ms'", db, tx)) await timeout.ExecuteNonQueryAsync();
        await using var touch = new Npgsql.NpgsqlCommand(
            $"update {Kraud.Api.Common.SchedulerFence.WolverineSchema}.wolverine_node_assignments set node_id = node_id where id = @id", db, tx);
        touch.Parameters.AddWithValue("id", Kraud.Api.Common.SchedulerFence.AgentOf(Kraud.Api.Common.SchedulerQueue.Name));
        var rows = await touch.ExecuteNonQueryAsync();
        await tx.RollbackAsync();
        return rows;
    }

    [Fact]
    public async Task a_projection_rebuild_runs_on_the_node_that_runs_the_async_projections_and_any_other_node_names_that_one()
    {
        var d = await app.StartNodeAsync("d");
        try
        {
            var nodes = await SettledAsync(d, app.Nodes.Count);
            var holderName = nodes.Single(ClusterView.RunsProjections).Id;
            var holder = app.Nodes.Single(n => n.Name == holderName).Host;
            var other = app.Nodes.First(n => n.Name != holderName).Host;
            const string Rebuild = "mutation { rebuildProjection(name: \"AuditChain\") { name state } }";
            const string Job = "{ rebuildJob(name: \"AuditChain\") { state eventsProcessed } }";

            var refused = (await Gql(other, KraudApp.OperatorToken, Rebuild)).ShouldFailWith("PRECONDITION");
            Assert.Contains($"node {holderName}", refused.Body);
            Assert.Contains($"node {holderName}", (await Gql(other, KraudApp.OperatorToken, Job)).ShouldFailWith("PRECONDITION").Body);

            (await Gql(holder, KraudApp.OperatorToken, Rebuild)).ShouldSucceed();
            var done = await Eventually.Get(async () => (await Gql(holder, KraudApp.OperatorToken, Job)).ShouldSucceed().Data.GetProperty("rebuildJob"),
                j => j.GetProperty("state").GetString() != "RUNNING", TimeSpan.FromSeconds(60), "the chain was rebuilt on the node that runs it");
            Assert.Equal("COMPLETED", done.GetProperty("state").GetString());
        }
        finally
        {
            await app.StopNodeAsync(d);
        }
    }

    [Fact]
    public async Task when_the_node_holding_the_scheduler_stops_while_pods_are_pending_placement_continues_on_another_node_within_10_seconds()
    {
        await app.StartNodeAsync("c");
        var nodes = await SettledAsync(app.Host, app.Nodes.Count);
        var holderName = nodes.Single(n => n.Roles.Contains("scheduler")).Id;
        var holder = app.Nodes.Single(n => n.Name == holderName).Host;
        var survivor = app.Nodes.First(n => n.Name != holderName);
        var tenant = await TenantScope.CreateAsync(app);

        // Pending: no host of the zone takes pods while both are cordoned.
        foreach (var host in app.Hosts)
            (await Gql(survivor.Host, KraudApp.OperatorToken, "mutation($id: ID!) { cordonHost(id: $id) { state } }", new { id = host.Id.ToString() })).ShouldSucceed();
        var pods = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var pod = (await Gql(survivor.Host, tenant.Token, "mutation($in: CreatePodInput!) { createPod(input: $in) { id } }",
                new { @in = new { name = $"pending-{i}", image = "nginx:1.27", cpu = 1, memoryMiB = 256, replicas = 1, zone = app.Zone } })).ShouldSucceed();
            pods.Add(pod.Data.GetProperty("createPod").Id());
        }
        foreach (var pod in pods) await StateOnAsync(survivor.Host, tenant, pod, "UNSCHEDULABLE", TimeSpan.FromSeconds(30));

        // Watch who holds the scheduler through the handover: never two nodes at once.
        using var watching = new CancellationTokenSource();
        var holders = WatchSchedulerHoldersAsync(survivor.Host, watching.Token);

        var stopping = Stopwatch.StartNew();
        await app.StopNodeAsync(holder);
        foreach (var host in app.Hosts)
            (await Gql(survivor.Host, KraudApp.OperatorToken, "mutation($id: ID!) { uncordonHost(id: $id) { state } }", new { id = host.Id.ToString() })).ShouldSucceed();
        try
        {
            foreach (var pod in pods) await PlacedOnAsync(survivor.Host, tenant, pod, TimeSpan.FromSeconds(10) - stopping.Elapsed);
        }
        catch (TimeoutException e)
        {
            var health = await ClusterApp.HealthAsync(survivor.Host);
            var states = new List<string>();
            foreach (var pod in pods)
                states.Add((await Gql(survivor.Host, tenant.Token, "query($id: ID!) { pod(id: $id) { state reason instances { hostId state } } }", new { id = pod }))
                    .Data.GetProperty("pod").ToString());
            throw new TimeoutException($"{e.Message} Pods: {string.Join("; ", states)}. The cluster then: {System.Text.Json.JsonSerializer.Serialize(health.Nodes)}", e);
        }
        var placedAfter = stopping.Elapsed;
        await watching.CancelAsync();
        var seen = await holders;
        foreach (var pod in pods) await StateOnAsync(survivor.Host, tenant, pod, "RUNNING", TimeSpan.FromSeconds(30));

        Assert.True(placedAfter < TimeSpan.FromSeconds(10), $"placed {placedAfter.TotalSeconds:F1} s after the scheduler's node began to stop");
        output.WriteLine($"placed {placedAfter.TotalSeconds:F1} s after the scheduler's node began to stop");
        Assert.All(seen, holdersAtOnce => Assert.True(holdersAtOnce.Count <= 1, $"the scheduler was held by {string.Join(", ", holdersAtOnce)} at once"));
        var after = await ClusterApp.HealthAsync(survivor.Host);
        Assert.Contains(after.Nodes!, n => n.Id != holderName && n.Roles.Contains("scheduler"));
        Assert.DoesNotContain(after.Nodes!, n => n.Id == holderName);
        // The log shows the handover: the old holder let go, another node took it. The new holder's line is written when its
        // agent has started, which can come after the leader assigned it (what Nodes shows) and after placement resumed.
        List<Handover> history;
        var reading = Stopwatch.StartNew();
        try
        {
            history = (await Eventually.Get(() => ClusterApp.HealthAsync(survivor.Host), h => LogsHandover(h.Handovers!, holderName),
                TimeSpan.FromSeconds(10), "the handover is logged")).Handovers!.ToList();
            output.WriteLine($"the handover was in the log {reading.Elapsed.TotalSeconds:F1} s after the pods ran");
        }
        catch (TimeoutException)
        {
            history = (await ClusterApp.HealthAsync(survivor.Host)).Handovers!.ToList();
        }
        Assert.True(LogsHandover(history, holderName), $"the handover is logged: {string.Join("; ", history)}");
    }

    /// <summary>The holder took the scheduler, then let go of it, then another node took it.</summary>
    private static bool LogsHandover(IReadOnlyList<Handover> history, string holderName)
    {
        var log = history.ToList();
        var took = log.FindLastIndex(h => h is { Role: "scheduler", Change: "started" } && h.Node == holderName);
        // It let go when the first of these is logged: its scheduler stopped (not always logged: a node that stops hands its
        // listeners back without a line), or the node itself stopped (logged by Kraud, after the roles may have moved).
        var stopped = log.FindIndex(Math.Max(took, 0), h => h.Node == holderName && h is { Change: "stopped", Role: "scheduler" or "" });
        var handedOver = log.FindLastIndex(h => h is { Role: "scheduler", Change: "started" } && h.Node != holderName);
        return took >= 0 && took < stopped && stopped < handedOver;
    }

    [Fact]
    public async Task a_node_that_is_killed_loses_its_roles_to_the_other_node_within_10_seconds_and_placement_goes_on()
    {
        await using var node = app.StartNodeProcess(app.NodeName("killed"));
        var nodes = await SettledProcessAsync(node, app.Nodes.Count + 1);
        var held = nodes.Single(n => n.Id == node.Name).Roles;
        Assert.NotEmpty(held);

        var killing = Stopwatch.StartNew();
        await node.KillAsync();
        await SettledAsync(app.Host, app.Nodes.Count, TimeSpan.FromSeconds(10) - killing.Elapsed);
        var movedAfter = killing.Elapsed;
        output.WriteLine($"the roles {string.Join(", ", held)} moved {movedAfter.TotalSeconds:F1} s after the kill");
        Assert.True(movedAfter < TimeSpan.FromSeconds(10), $"the killed node's roles moved {movedAfter.TotalSeconds:F1} s after the kill");

        // The scheduler works wherever it went.
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("after-kill", zone: app.Zone);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 30);
    }

    [Fact]
    public async Task a_node_stopped_with_SIGTERM_hands_its_roles_back_and_exits_cleanly()
    {
        await using var node = app.StartNodeProcess(app.NodeName("termed"));
        var nodes = await SettledProcessAsync(node, app.Nodes.Count + 1);
        Assert.NotEmpty(nodes.Single(n => n.Id == node.Name).Roles);
        await node.WaitUntilServingAsync(TimeSpan.FromSeconds(60));

        var exited = await node.TerminateAsync(TimeSpan.FromSeconds(40));
        Assert.True(node.ExitCode == 0, $"exit code {node.ExitCode}:\n{node.OutputTail()}");
        // Handed back, not taken after a silence: the others hold everything well before a dead node's 5 s would pass.
        var clock = Stopwatch.StartNew();
        await SettledAsync(app.Host, app.Nodes.Count, TimeSpan.FromSeconds(10));
        output.WriteLine($"exited {exited.TotalSeconds:F1} s after SIGTERM; its roles were held again {clock.Elapsed.TotalSeconds:F1} s after the exit");
        var health = await ClusterApp.HealthAsync(app.Host);
        Assert.Contains(health.Handovers!, h => h.Node == node.Name && h.Change == "stopped");
    }

    /// <summary>A node process starts cold (JIT, schema checks): it has longer to join and be given roles.</summary>
    private async Task<IReadOnlyList<NodeStatus>> SettledProcessAsync(ApiNodeProcess node, int nodes)
    {
        try
        {
            return await SettledAsync(app.Host, nodes, TimeSpan.FromSeconds(90), node.Name);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} Exited: {node.HasExited}; its output:\n{node.OutputTail()}", e);
        }
    }

    private static async Task StateOnAsync(IAlbaHost node, TenantScope tenant, string pod, string state, TimeSpan timeout) =>
        await Eventually.Until(async () =>
                (await Gql(node, tenant.Token, "query($id: ID!) { pod(id: $id) { state } }", new { id = pod })).ShouldSucceed()
                .Data.GetProperty("pod").GetProperty("state").GetString() == state,
            timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero, $"pod {pod} is {state}");

    private static async Task PlacedOnAsync(IAlbaHost node, TenantScope tenant, string pod, TimeSpan timeout) =>
        await Eventually.Until(async () =>
                (await Gql(node, tenant.Token, "query($id: ID!) { pod(id: $id) { instances { hostId } } }", new { id = pod })).ShouldSucceed()
                .Data.GetProperty("pod").GetProperty("instances").EnumerateArray().Any(i => i.GetProperty("hostId").ValueKind == System.Text.Json.JsonValueKind.String),
            timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero, $"pod {pod} is placed");

    private static async Task<List<List<string>>> WatchSchedulerHoldersAsync(IAlbaHost node, CancellationToken ct)
    {
        var seen = new List<List<string>>();
        while (!ct.IsCancellationRequested)
        {
            var health = await ClusterApp.HealthAsync(node);
            seen.Add(health.Nodes!.Where(n => n.Roles.Contains("scheduler")).Select(n => n.Id).ToList());
            try
            {
                await Task.Delay(100, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return seen;
    }
}
