using System.Text.Json;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class SelfHealingSpecs(KraudApp app)
{
    private TimeSpan Recovery => TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 20);

    private async Task PowerBackOnAsync(string hostId)
    {
        app.Agent(hostId).PowerOn();
        await app.WaitForHostStateAsync(hostId, "READY", TimeSpan.FromSeconds(20), "the host recovered");
    }

    [Fact]
    public async Task when_a_host_misses_heartbeats_it_is_marked_failed_and_its_pods_run_again_elsewhere()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("mover", zone: "fsn1-b");
        var before = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var hostId = before.Instances()[0].GetProperty("hostId").GetString()!;
        var failedAt = DateTimeOffset.UtcNow;
        app.Agent(hostId).PowerOff();
        try
        {
            await app.WaitForHostStateAsync(hostId, "FAILED", Recovery, "the silent host is FAILED");
            var after = await tenant.WaitForPodAsync(pod.Id(),
                p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("hostId").GetString() != hostId), Recovery, "the pod runs on another host");
            Assert.True(DateTimeOffset.UtcNow - failedAt < Recovery);
            Assert.Equal("fsn1-b", app.Agent(after.Instances()[0].GetProperty("hostId").GetString()!).Definition.Zone);

            var hostFailed = Assert.Single((await app.EventsOf(Guid.Parse(hostId))).Select(e => e.Data).OfType<HostFailed>(), e => e.At >= failedAt);
            Assert.True(hostFailed.MissedHeartbeats >= app.HeartbeatTimeoutSeconds * 1000 / KraudApp.HeartbeatIntervalMs);
            Assert.True(hostFailed.LastHeartbeat < hostFailed.At);
            var lost = Assert.Single((await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data).OfType<PodReplicaLost>());
            Assert.True(lost.EphemeralDataLost);
            Assert.Contains("no heartbeat", lost.Reason);
            Assert.NotEqual(before.Instances()[0].Id(), after.Instances()[0].Id());
        }
        finally
        {
            await PowerBackOnAsync(hostId);
        }
        var recovered = (await app.EventsOf(Guid.Parse(hostId))).Select(e => e.Data).OfType<HostRecovered>().Last();
        Assert.True(recovered.At >= failedAt);

        // The incident review tells the story from the events alone.
        var incident = (await app.AsOperator("query($h: ID, $f: DateTime!, $t: DateTime!) { incident(hostId: $h, from: $f, to: $t) { hostIds affectedPods summary events { type streamId } } }",
            new { h = hostId, f = failedAt.UtcDateTime.AddSeconds(-1), t = DateTime.UtcNow.AddSeconds(1) })).ShouldSucceed().Data.GetProperty("incident");
        var summary = incident.GetProperty("summary").EnumerateArray().Select(l => l.GetString()!).ToList();
        Assert.Contains(summary, l => l.Contains("FAILED") && l.Contains("no heartbeat"));
        Assert.Contains(summary, l => l.Contains("pod default/mover") && l.Contains("lost its microVM"));
        Assert.Contains(summary, l => l.Contains("pod default/mover runs again"));
        Assert.Contains(summary, l => l.StartsWith("Recovery took", StringComparison.Ordinal));
        Assert.Contains(summary, l => l.Contains("was heard of again"));
        Assert.Contains(pod.Id(), incident.GetProperty("affectedPods").EnumerateArray().Select(p => p.GetString()));
        Assert.Contains(hostId, incident.GetProperty("hostIds").EnumerateArray().Select(p => p.GetString()));
        Assert.Contains(incident.GetProperty("events").EnumerateArray(), e => e.GetProperty("type").GetString() == "host_failed");
    }

    [Fact]
    public async Task a_confidential_pod_on_a_failed_host_fails_and_is_not_rescheduled()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("enclave", confidential: true);
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var hostId = running.Instances()[0].GetProperty("hostId").GetString()!;
        app.Agent(hostId).PowerOff();
        try
        {
            var failed = await tenant.WaitForPodAsync(pod.Id(), "FAILED", seconds: (int)Recovery.TotalSeconds);
            Assert.Contains("not rescheduled", failed.GetProperty("reason").GetString());
            Assert.DoesNotContain((await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data), e => e is PodReplicaLost);
        }
        finally
        {
            await PowerBackOnAsync(hostId);
        }
        Assert.Equal("FAILED", (await tenant.PodAsync(pod.Id()))!.Value.State());
    }

    [Fact]
    public async Task a_microvm_that_vanished_from_its_host_is_booted_again()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("phoenix");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = running.Instances()[0];
        var driver = app.Driver(vm.GetProperty("hostId").GetString()!);
        Assert.True(driver.Vanish(Guid.Parse(vm.Id())));

        await app.StreamCommits.UntilAsync(Guid.Parse(pod.Id()), async () => (await app.EventsOf(Guid.Parse(pod.Id()))).Any(e => e.Data is PodReplicaVanished),
            vanished => vanished, TimeSpan.FromSeconds(15), "reconciliation noticed the missing microVM");
        await Eventually.Until(() => Task.FromResult(driver.Running.Contains(Guid.Parse(vm.Id()))), TimeSpan.FromSeconds(15), "the same microVM runs again");
        var again = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        Assert.Equal(vm.Id(), Assert.Single(again.Instances()).Id());
    }

    [Fact]
    public async Task a_boot_whose_report_was_lost_is_asked_for_again_and_the_pod_runs_with_its_one_microvm()
    {
        var tenant = await TenantScope.CreateAsync(app);
        // Every host loses the report of the tenant's first boot, as a report dead-lettered at the control plane is lost.
        foreach (var host in app.Agents.All) host.LoseNextBootReports(tenant.Id, 1);
        try
        {
            var pod = await tenant.CreatePodAsync("unheard");
            var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 60);
            var vm = Assert.Single(running.Instances());
            var hostId = vm.GetProperty("hostId").GetString()!;
            Assert.Equal(1, app.Agent(hostId).LostBootReports(tenant.Id));
            Assert.Contains(Guid.Parse(vm.Id()), app.Driver(hostId).Running);
            // The microVM that booted is the one recorded RUNNING: placed once, running once, nothing replaced.
            var events = (await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data).ToList();
            Assert.Equal(Guid.Parse(vm.Id()), Assert.Single(events.OfType<PodReplicaScheduled>()).VmId);
            Assert.Single(events.OfType<PodReplicaRunning>());
            Assert.DoesNotContain(events, e => e is PodReplicaLost or PodReplicaVanished or PodReplicaFailed or PodReplicaReplaced);
        }
        finally
        {
            foreach (var host in app.Agents.All) host.ClearReportFaults();
        }
    }

    [Fact]
    public async Task a_microvm_no_pod_owns_is_stopped()
    {
        var host = app.Agents.All.First(a => a.Definition.Role == "Compute" && !a.Definition.SevSnp);
        var driver = (Kraud.HostRuntime.Drivers.SimulatedDriver)host.Driver;
        var stray = new MicroVmSpec(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, "stray", [], new Dictionary<string, string>(), 1, 64, 0, false);
        driver.Adopt(stray);

        await Eventually.Until(() => Task.FromResult(!driver.Running.Contains(stray.VmId)), TimeSpan.FromSeconds(15), "the stray microVM was stopped");
        var stopped = Assert.Single((await app.EventsOf(host.Id)).Select(e => e.Data).OfType<UnknownMicroVmStopped>(), e => e.VmId == stray.VmId);
        Assert.Contains("no pod owns", stopped.Reason);
    }

    [Fact]
    public async Task hosts_report_their_last_heartbeat()
    {
        // Run first in a fresh fixture, a host may not have beaten yet: every powered one has within a few intervals.
        var hosts = await Eventually.Get(
            async () => (await app.AsOperator("{ hosts { name lastHeartbeat } }")).ShouldSucceed().Data.GetProperty("hosts").EnumerateArray()
                .Where(h => app.Agents.Find(h.GetProperty("name").GetString()!) is { PoweredOn: true }).ToList(),
            hosts => hosts.All(h => h.GetProperty("lastHeartbeat").ValueKind == JsonValueKind.String), TimeSpan.FromSeconds(15), "every powered host has beaten");
        Assert.All(hosts, h => Assert.True(DateTime.UtcNow - h.GetProperty("lastHeartbeat").GetDateTime().ToUniversalTime() < TimeSpan.FromSeconds(10)));
    }
}

[Collection(ApiCollection.Name)]
public class DrainSpecs(KraudApp app)
{
    [Fact]
    public async Task draining_a_host_moves_its_replicas_elsewhere_and_then_reports_it_empty()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("drained", zone: "fsn1-a");
        var before = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var hostId = before.Instances()[0].GetProperty("hostId").GetString()!;
        try
        {
            var draining = await app.DrainAsync(hostId);
            Assert.Contains(draining, new[] { "DRAINING", "CORDONED" });
            var moved = await tenant.WaitForPodAsync(pod.Id(),
                p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("hostId").GetString() != hostId), TimeSpan.FromSeconds(20), "the replica moved");
            Assert.Single(moved.Instances());
            await app.WaitForHostStateAsync(hostId, "CORDONED", TimeSpan.FromSeconds(60), "the drained host is empty and cordoned");
            Assert.Contains((await app.EventsOf(Guid.Parse(hostId))).Select(e => e.Data), e => e is HostDrained);
            Assert.Contains((await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data), e => e is PodReplicaEvicted ev && ev.Reason.Contains("drained"));
            Assert.DoesNotContain(Guid.Parse(before.Instances()[0].Id()), app.Driver(hostId).Running);
        }
        finally
        {
            await app.UncordonAsync(hostId);
        }
    }

    [Fact]
    public async Task a_drained_host_whose_microvms_all_stop_at_once_still_ends_cordoned()
    {
        // Their stop reports are handled in parallel, and each sees the others' VMs still on the host.
        var tenant = await TenantScope.CreateAsync(app);
        var created = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => tenant.CreatePodAsync($"crowd-{i}", zone: "fsn1-a")));
        var running = await Task.WhenAll(created.Select(p => tenant.WaitForPodAsync(p.Id(), "RUNNING")));
        var hostId = running.SelectMany(p => p.Instances()).GroupBy(i => i.GetProperty("hostId").GetString()!).MaxBy(g => g.Count())!.Key;
        try
        {
            await app.DrainAsync(hostId);
            await app.WaitForHostStateAsync(hostId, "CORDONED", TimeSpan.FromSeconds(30), "the drained host is empty and cordoned");
            Assert.Empty(app.Driver(hostId).Running);
            foreach (var pod in created)
            {
                var moved = await tenant.WaitForPodAsync(pod.Id(),
                    p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("hostId").GetString() != hostId), TimeSpan.FromSeconds(20), "the replica moved");
                Assert.Single(moved.Instances());
            }
        }
        finally
        {
            await app.UncordonAsync(hostId);
        }
    }

    [Fact]
    public async Task only_operators_drain_hosts()
    {
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql("mutation($id: ID!) { drainHost(id: $id) { state } }", new { id = app.Agents.All.First().Id })).ShouldFailWith("FORBIDDEN");
    }
}
