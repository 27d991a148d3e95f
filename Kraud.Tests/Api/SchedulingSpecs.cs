using Kraud.Domain.Common;
using Kraud.HostRuntime.Agents;
using Kraud.Projections.Fleet;
using Kraud.Tests.Infrastructure;
using Marten;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class SchedulingSpecs(KraudApp app)
{
    [Fact]
    public async Task an_unschedulable_pod_runs_once_its_zone_has_room_again()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var zoneB = app.Agents.All.Where(a => a.Definition is { Role: "Compute", Zone: "fsn1-b" }).ToList();
        foreach (var host in zoneB) await app.CordonAsync(host.Id);
        string podId;
        try
        {
            podId = (await tenant.CreatePodAsync("patient", zone: "fsn1-b")).Id();
            var refused = await tenant.WaitForPodAsync(podId, "UNSCHEDULABLE");
            Assert.Contains("fsn1-b", refused.GetProperty("reason").GetString());
        }
        finally
        {
            foreach (var host in zoneB) await app.UncordonAsync(host.Id);
        }
        // Nobody asks again: the scheduler tries unschedulable pods every few seconds.
        var running = await tenant.WaitForPodAsync(podId, "RUNNING");
        Assert.Equal("fsn1-b", app.Agent(running.Instances()[0].GetProperty("hostId").GetString()!).Definition.Zone);
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task every_host_keeps_count_of_its_microvms_when_many_start_and_stop_on_it_at_once()
    {
        // Hosts hear of placements and releases from many handlers at once; their views are what the scheduler places
        // against, so each must stay exactly what its stream says.
        var tenant = await TenantScope.CreateAsync(app);
        var pods = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => tenant.CreatePodAsync($"busy-{i}", replicas: 3, zone: "fsn1-b")));
        await Task.WhenAll(pods.Select(p => tenant.WaitForPodAsync(p.Id(), "RUNNING")));
        await Task.WhenAll(pods.Select(p => tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = p.Id() })));
        await Task.WhenAll(pods.Select(p => tenant.WaitForPodAsync(p.Id(), "STOPPED")));

        await Eventually.Get(async () =>
        {
            await using var session = app.Store.QuerySession();
            var differing = new List<string>();
            foreach (var view in await session.Query<HostView>().ToListAsync())
            {
                var folded = Fold.Events<Kraud.Domain.Fleet.Host>((await session.Events.FetchStreamAsync(view.Id)).Select(e => e.Data));
                if (!folded.Vms.Keys.ToHashSet().SetEquals(view.Host.Vms.Keys) || folded.State != view.State || folded.CpuUsed != view.CpuUsed)
                    differing.Add($"{view.Name}: view {view.Host.Vms.Count} VMs, stream {folded.Vms.Count}");
            }
            return string.Join("; ", differing);
        }, differing => differing == "", TimeSpan.FromSeconds(10), "every host's view is its stream folded");
    }

    [Fact]
    public async Task pods_whose_placement_requests_never_reached_the_scheduler_are_placed_by_its_next_batch()
    {
        // The exclusive queue hands the scheduler a message or two at a time; each batch also places every pod that waits.
        // These three were requested without a message to the scheduler: only that gathering can place them.
        var tenant = await TenantScope.CreateAsync(app);
        var quiet = Enumerable.Range(0, 3).Select(_ => Guid.NewGuid()).ToList();
        var correlation = $"quiet-{Guid.NewGuid():N}";
        await using (var session = app.Store.LightweightSession())
        {
            session.CorrelationId = correlation;
            foreach (var (id, i) in quiet.Select((id, i) => (id, i)))
                session.Events.StartStream<Kraud.Domain.Pods.Pod>(id, new Kraud.Domain.Pods.PodRequested(id, tenant.Id,
                    new Kraud.Domain.Pods.PodSpec($"quiet-{i}", "default", "nginx", [], new Dictionary<string, string>(), 1, 64, null, false, 0), 1,
                    "spec", DateTimeOffset.UtcNow));
            await session.SaveChangesAsync();
        }
        var asked = await tenant.CreatePodAsync("asked");

        await tenant.WaitForPodAsync(asked.Id(), "RUNNING");
        foreach (var id in quiet) await tenant.WaitForPodAsync(id.ToString(), "RUNNING");
        // The placement carries the correlation id of the pod's request, as it would from the pod's own message.
        var scheduled = (await app.EventsOf(quiet[0])).First(e => e.Data is Kraud.Domain.Pods.PodReplicaScheduled);
        Assert.Equal(correlation, scheduled.CorrelationId);
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task a_pod_whose_ask_to_the_scheduler_was_lost_is_placed_by_the_repair_round_without_any_other_request()
    {
        // A pod's ask travels in memory after its commit; a node that dies in between loses it. Nothing else asks here: only
        // the round that asks for every pod PENDING longer than a moment can place it.
        var tenant = await TenantScope.CreateAsync(app);
        var lost = Guid.NewGuid();
        var correlation = $"lost-{Guid.NewGuid():N}";
        await using (var session = app.Store.LightweightSession())
        {
            session.CorrelationId = correlation;
            session.Events.StartStream<Kraud.Domain.Pods.Pod>(lost, new Kraud.Domain.Pods.PodRequested(lost, tenant.Id,
                new Kraud.Domain.Pods.PodSpec("lost", "default", "nginx", [], new Dictionary<string, string>(), 1, 64, null, false, 0), 1,
                "spec", DateTimeOffset.UtcNow));
            await session.SaveChangesAsync();
        }

        await tenant.WaitForPodAsync(lost.ToString(), "RUNNING");
        var scheduled = (await app.EventsOf(lost)).First(e => e.Data is Kraud.Domain.Pods.PodReplicaScheduled);
        Assert.Equal(correlation, scheduled.CorrelationId);
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task the_microvms_one_batch_places_on_a_host_boot_from_one_command_and_run_in_one_transaction_each_in_its_own_pods_name()
    {
        // Three pods per host of the zone wait unplaced (their requests sent no message); the next request's batch places them
        // all, so each host gets several boots at once: one command, and the boots over at once answered in one report.
        var tenant = await TenantScope.CreateAsync(app);
        var hosts = app.Agents.All.Count(a => a.Definition is { Role: "Compute", Zone: "fsn1-b" });
        var quiet = Enumerable.Range(0, hosts * 3).Select(i => (Id: Guid.NewGuid(), Correlation: $"burst-{i}-{Guid.NewGuid():N}")).ToList();
        foreach (var (pod, i) in quiet.Select((p, i) => (p, i)))
        {
            await using var session = app.Store.LightweightSession();
            session.CorrelationId = pod.Correlation;
            session.Events.StartStream<Kraud.Domain.Pods.Pod>(pod.Id, new Kraud.Domain.Pods.PodRequested(pod.Id, tenant.Id,
                new Kraud.Domain.Pods.PodSpec($"burst-{i}", "default", "nginx", [], new Dictionary<string, string>(), 1, 64, "fsn1-b", false, 0), 1,
                "spec", DateTimeOffset.UtcNow));
            await session.SaveChangesAsync();
        }
        var asked = await tenant.CreatePodAsync("asked", zone: "fsn1-b");
        await tenant.WaitForPodAsync(asked.Id(), "RUNNING");
        foreach (var (id, _) in quiet) await tenant.WaitForPodAsync(id.ToString(), "RUNNING");

        var runs = new List<(Guid Host, string Placed, string Ran, bool Quick)>();
        foreach (var (id, correlation) in quiet)
        {
            var events = await app.EventsOf(id);
            var running = events.Single(e => e.Data is Kraud.Domain.Pods.PodReplicaRunning);
            // The host's report traveled in a list, and still each pod's facts carry the correlation id of its own request.
            Assert.Equal(correlation, running.CorrelationId);
            var placed = events.Single(e => e.Data is Kraud.Domain.Pods.PodReplicaScheduled);
            // A boot that outlasts the BOOTING window (a loaded machine) reports on its own: only quick ones share a report.
            runs.Add((((Kraud.Domain.Pods.PodReplicaRunning)running.Data).HostId, await TransactionOf(placed.Id), await TransactionOf(running.Id),
                !events.Any(e => e.Data is Kraud.Domain.Pods.PodReplicaBooting)));
        }
        // Pods one batch placed on one host (almost always all of them; another request's batch may have gathered some first)
        // ran in one transaction.
        var together = runs.Where(r => r.Quick).GroupBy(r => (r.Host, r.Placed)).Where(g => g.Count() > 1).ToList();
        Assert.NotEmpty(together);
        Assert.All(together, host => Assert.Single(host.Select(r => r.Ran).Distinct()));
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task a_pod_that_names_a_zone_runs_only_in_that_zone()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("zonal", replicas: 2, zone: "fsn1-b");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        Assert.All(running.Instances(), i => Assert.Equal("fsn1-b", app.Agent(i.GetProperty("hostId").GetString()!).Definition.Zone));
    }

    [Fact]
    public async Task a_confidential_pod_runs_on_the_sev_snp_host()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("secret", confidential: true);
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        Assert.True(app.Agent(Assert.Single(running.Instances()).GetProperty("hostId").GetString()!).Definition.SevSnp);
        Assert.True(running.GetProperty("confidential").GetBoolean());
    }

    [Fact]
    public async Task a_pod_no_host_can_take_is_unschedulable_with_the_reason()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("huge", replicas: 2, cpu: 64, memoryMiB: 4096);
        var unschedulable = await tenant.WaitForPodAsync(pod.Id(), "UNSCHEDULABLE");
        Assert.Contains("64 cpu", unschedulable.GetProperty("reason").GetString());
        Assert.Empty(unschedulable.Instances());
    }

    [Fact]
    public async Task a_zone_without_hosts_makes_the_pod_unschedulable()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("nowhere", zone: "nbg1-x");
        var unschedulable = await tenant.WaitForPodAsync(pod.Id(), "UNSCHEDULABLE");
        Assert.Contains("nbg1-x", unschedulable.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task a_failed_replica_is_replaced_by_a_new_microvm_after_its_back_off()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var image = $"flaky-{Guid.NewGuid():N}:1";
        await app.PushImagesAsync(image);
        foreach (var driver in app.Drivers) driver.FailImage(image, "kernel panic");
        var pod = await tenant.CreatePodAsync("flaky", image: image);
        var failed = await tenant.WaitForPodAsync(pod.Id(), "FAILED");
        var failedVm = Assert.Single(failed.Instances()).Id();
        foreach (var driver in app.Drivers) driver.RepairImage(image);

        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 30);
        Assert.NotEqual(failedVm, Assert.Single(running.Instances()).Id());
        var replaced = Assert.Single((await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data).OfType<Kraud.Domain.Pods.PodReplicaReplaced>());
        Assert.Contains("kernel panic", replaced.Reason);
    }

    [Fact]
    public async Task a_microvm_that_fails_to_boot_makes_the_pod_failed_with_the_hosts_reason()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var image = $"broken-{Guid.NewGuid():N}:1";
        await app.PushImagesAsync(image);
        foreach (var driver in app.Drivers) driver.FailImage(image, "image pull failed: manifest unknown");
        var pod = await tenant.CreatePodAsync("broken", image: image);
        var failed = await tenant.WaitForPodAsync(pod.Id(), "FAILED");
        Assert.Equal("image pull failed: manifest unknown", failed.GetProperty("reason").GetString());
        Assert.Equal("FAILED", Assert.Single(failed.Instances()).State());
    }

    [Fact]
    public async Task the_scheduler_reads_again_only_the_hosts_that_changed_since_its_last_batch()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var capacity = app.Host.Services.GetRequiredService<Kraud.Api.Common.PlacementCapacities>().Compute;
        var computeHosts = app.Agents.All.Count(a => a.Definition.Role == "Compute");
        var first = await tenant.CreatePodAsync("warm");
        await tenant.WaitForPodAsync(first.Id(), "RUNNING");

        // One host cordoned and uncordoned meanwhile: its stream moved, the others' did not. Counted from before the
        // cordon: a batch the scheduler runs of its own accord in between (a repair round's ask) reads the moved host
        // then, and the second pod's batch reads nothing again; either way no batch reads the unchanged hosts.
        var readBefore = capacity.HostsRead;
        var moved = app.Agents.All.First(a => a.Definition.Role == "Compute");
        await app.CordonAsync(moved.Id);
        await app.UncordonAsync(moved.Id);
        var second = await tenant.CreatePodAsync("next");
        await tenant.WaitForPodAsync(second.Id(), "RUNNING");

        var read = capacity.HostsRead - readBefore;
        Assert.InRange(read, 1, computeHosts - 1);
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task cordoned_hosts_get_no_new_microvms_and_do_not_count_for_n_plus_2()
    {
        // Zone fsn1-b has five compute hosts; with two cordoned, three remain: room for pods of one replica only.
        var tenant = await TenantScope.CreateAsync(app);
        var zoneB = app.Agents.All.Where(a => a.Definition.Zone == "fsn1-b" && a.Definition.Role == "Compute").OrderBy(a => a.Name).ToList();
        var cordoned = zoneB.Take(2).ToList();
        foreach (var agent in cordoned)
            await app.CordonAsync(agent.Id);
        try
        {
            var pair = await tenant.CreatePodAsync("pair", replicas: 2, zone: "fsn1-b");
            var refused = await tenant.WaitForPodAsync(pair.Id(), "UNSCHEDULABLE");
            Assert.Contains("N+2", refused.GetProperty("reason").GetString());
            Assert.Contains("has 3", refused.GetProperty("reason").GetString());

            for (var i = 0; i < 3; i++)
            {
                var single = await tenant.CreatePodAsync($"single{i}", zone: "fsn1-b");
                var running = await tenant.WaitForPodAsync(single.Id(), "RUNNING");
                Assert.DoesNotContain(app.Agent(Assert.Single(running.Instances()).GetProperty("hostId").GetString()!).Name, cordoned.Select(c => c.Name));
            }
        }
        finally
        {
            await UncordonAsync(cordoned);
        }
    }

    [Fact]
    public async Task a_pod_with_more_replicas_than_its_zone_can_keep_apart_after_two_failures_is_unschedulable()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("wide", replicas: 4, zone: "fsn1-b");
        var refused = await tenant.WaitForPodAsync(pod.Id(), "UNSCHEDULABLE");
        Assert.Contains("N+2", refused.GetProperty("reason").GetString());
        Assert.Contains("at least 6", refused.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task all_replicas_of_a_pod_run_in_one_zone()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("together", replicas: 3);
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        Assert.Single(running.Instances().Select(i => app.Agent(i.GetProperty("hostId").GetString()!).Definition.Zone).Distinct());
    }

    private async Task UncordonAsync(IEnumerable<HostAgent> agents)
    {
        foreach (var agent in agents)
            await app.UncordonAsync(agent.Id);
    }

    /// <summary>The PostgreSQL transaction that wrote the event (its row's xmin).</summary>
    private async Task<string> TransactionOf(Guid eventId) =>
        (await SqlScalar.ValueAsync<string>(app.ConnectionString, "select xmin::text from kraud.mt_events where id = $1", eventId))!;
}

[Collection(ApiCollection.Name)]
public class FleetSpecs(KraudApp app)
{
    [Fact]
    public async Task zones_list_their_datacenter_racks_and_hosts()
    {
        var zones = (await app.AsOperator("{ zones { id datacenter racks hosts { name zone } } }")).ShouldSucceed().Data.GetProperty("zones").EnumerateArray().ToList();
        var a = Assert.Single(zones, z => z.GetProperty("id").GetString() == "fsn1-a");
        Assert.Equal("FSN1-DC2", a.GetProperty("datacenter").GetString());
        Assert.Equal(["a1", "a2"], a.GetProperty("racks").EnumerateArray().Select(r => r.GetString()));
        Assert.All(a.GetProperty("hosts").EnumerateArray(), h => Assert.Equal("fsn1-a", h.GetProperty("zone").GetString()));
        Assert.Equal(app.Agents.All.Count(h => h.Definition.Zone == "fsn1-a"), a.GetProperty("hosts").GetArrayLength());
    }

    [Fact]
    public async Task an_operator_registers_a_host_and_its_new_zone_appears()
    {
        var name = $"lab-{Guid.NewGuid():N}"[..12];
        var zone = $"zone-{Guid.NewGuid():N}"[..12];
        const string register = "mutation($in: RegisterHostInput!) { registerHost(input: $in) { id name zone rack role state cpu sevSnp } }";
        var host = (await app.AsOperator(register, new { @in = new { name, zone, rack = "l1", role = "COMPUTE", cpu = 16, memoryMiB = 32768, nvmeGiB = 500 } }))
            .ShouldSucceed().Data.GetProperty("registerHost");
        Assert.Equal("READY", host.GetProperty("state").GetString());
        Assert.False(host.GetProperty("sevSnp").GetBoolean());
        var zones = (await app.AsOperator("{ zones { id datacenter racks } }")).ShouldSucceed().Data.GetProperty("zones").EnumerateArray();
        Assert.Contains(zones, z => z.GetProperty("id").GetString() == zone && z.GetProperty("racks")[0].GetString() == "l1");

        (await app.AsOperator(register, new { @in = new { name, zone, rack = "l1", role = "COMPUTE", cpu = 16, memoryMiB = 32768, nvmeGiB = 500 } }))
            .ShouldFailWith("CONFLICT");
        (await app.AsOperator(register, new { @in = new { name = "Bad Name", zone, rack = "l1", role = "COMPUTE", cpu = 16, memoryMiB = 32768, nvmeGiB = 500 } }))
            .ShouldFailWith("VALIDATION");
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql(register, new { @in = new { name = "x1", zone, rack = "l1", role = "COMPUTE", cpu = 16, memoryMiB = 32768, nvmeGiB = 500 } }))
            .ShouldFailWith("FORBIDDEN");
    }
}
