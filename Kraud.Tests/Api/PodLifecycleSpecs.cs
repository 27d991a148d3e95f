using Kraud.Projections.Fleet;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Events;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class PodLifecycleSpecs(KraudApp app)
{
    [Fact]
    public async Task a_tenant_creates_a_three_replica_pod_that_runs_on_three_hosts_and_deleting_it_stops_every_microvm()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = await tenant.CreatePodAsync("web", replicas: 3, cpu: 2, memoryMiB: 512);
        Assert.Equal("PENDING", created.State());
        // Two facts: the pod was requested, and its image resolved to a digest.
        Assert.Equal(2, created.GetProperty("version").GetInt32());
        Assert.Equal(tenant.Id.ToString(), created.GetProperty("tenantId").GetString());

        var running = await tenant.WaitForPodAsync(created.Id(), "RUNNING");
        var instances = running.Instances();
        Assert.Equal(3, instances.Count);
        Assert.Equal(3, instances.Select(i => i.GetProperty("hostId").GetString()).Distinct().Count());
        Assert.All(instances, i =>
        {
            Assert.Equal("RUNNING", i.State());
            Assert.True(i.GetProperty("bootMs").GetDouble() >= KraudApp.BootDelayMs * 0.9, "the boot time is the one the host measured");
        });
        var vmIds = instances.Select(i => Guid.Parse(i.Id())).ToList();
        Assert.All(vmIds, vm => Assert.Contains(app.Drivers, d => d.Running.Contains(vm)));

        // Capacity is reserved on exactly the hosts that run the VMs.
        await using (var session = app.Store.QuerySession())
        {
            var hosts = await session.Query<HostView>().ToListAsync();
            Assert.All(instances, i => Assert.Contains(hosts, h => h.Id.ToString() == i.GetProperty("hostId").GetString()
                                                                   && h.Host.Vms.ContainsKey(Guid.Parse(i.Id()))));
        }

        var deleted = (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { state } }", new { id = created.Id() })).ShouldSucceed();
        Assert.Equal("STOPPING", deleted.Data.GetProperty("deletePod").State());
        var stopped = await tenant.WaitForPodAsync(created.Id(), "STOPPED");
        Assert.Empty(stopped.Instances());
        Assert.All(vmIds, vm => Assert.DoesNotContain(app.Drivers, d => d.Running.Contains(vm)));
        await using (var session = app.Store.QuerySession())
        {
            var hosts = await session.Query<HostView>().ToListAsync();
            Assert.All(vmIds, vm => Assert.DoesNotContain(hosts, h => h.Host.Vms.ContainsKey(vm)));
        }
    }

    [Fact]
    public async Task the_audit_log_records_who_created_the_pod_and_every_step_that_followed()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var me = (await tenant.Gql("{ me { tokenId } }")).ShouldSucceed().Data.GetProperty("me").GetProperty("tokenId").GetString();
        var pod = await tenant.CreatePodAsync("audited", replicas: 2);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        // RUNNING: both replicas' running events are appended. The audit chain is an async projection: once the daemon has
        // caught up with the store's high water mark, it holds them, and reading it once is enough.
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));

        var log = (await tenant.Gql("query($t: ID) { auditLog(tenantId: $t, first: 1000) { nodes { actor action resourceId outcome correlationId causationId hash previousHash } } }",
            new { t = tenant.Id })).ShouldSucceed();
        var entries = log.Data.GetProperty("auditLog").GetProperty("nodes").EnumerateArray().Where(e => e.GetProperty("resourceId").GetString() == pod.Id()).ToList();
        Assert.Equal(2, entries.Count(e => e.GetProperty("action").GetString() == "pod_replica_running"));

        var command = Assert.Single(entries, e => e.GetProperty("action").GetString() == "CreatePod");
        Assert.Equal($"token:{me}", command.GetProperty("actor").GetString());
        Assert.Equal("accepted", command.GetProperty("outcome").GetString());
        var requested = Assert.Single(entries, e => e.GetProperty("action").GetString() == "pod_requested");
        Assert.Equal(command.GetProperty("correlationId").GetString(), requested.GetProperty("correlationId").GetString());
        Assert.Equal(2, entries.Count(e => e.GetProperty("action").GetString() == "pod_replica_scheduled"));
        Assert.All(entries.Where(e => e.GetProperty("action").GetString() == "pod_replica_scheduled"),
            e => Assert.Equal("system:scheduler", e.GetProperty("actor").GetString()));
        // Scheduling and booting carry the request's correlation id all the way through the host queues.
        Assert.All(entries, e => Assert.Equal(command.GetProperty("correlationId").GetString(), e.GetProperty("correlationId").GetString()));
        Assert.All(entries, e => Assert.Matches("^[0-9a-f]{64}$", e.GetProperty("hash").GetString()!));

        // Every event carries who asked (token, role, tenant) and through which command, as Marten metadata.
        var requestedEvent = (await app.EventsOf(Guid.Parse(pod.Id()))).First();
        Assert.Equal($"token:{me}", requestedEvent.Headers!["actor"]?.ToString());
        Assert.Equal("ADMIN", requestedEvent.Headers!["role"]?.ToString());
        Assert.Equal(tenant.Id.ToString(), requestedEvent.Headers!["tenant"]?.ToString());
        Assert.Equal("CreatePod", requestedEvent.Headers!["command"]?.ToString());
        Assert.False(string.IsNullOrEmpty(requestedEvent.CorrelationId));
    }

    [Fact]
    public async Task a_pod_mutation_answers_the_pod_at_the_version_its_own_events_reached()
    {
        // The answer is built from what the command decided, not read back: it must be what the stream says right after it.
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("answered");
        var podId = Guid.Parse(pod.Id());
        var events = await app.EventsOf(podId);
        // A create appends the request and the image's digest; the scheduler's events may follow before this read.
        Assert.Equal(events.Single(e => e.Data is Kraud.Domain.Pods.PodImageResolved).Version, pod.GetProperty("version").GetInt32());
        Assert.Equal("PENDING", pod.State());
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");

        var scaled = (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 2) { version replicas } }", new { id = pod.Id() }))
            .ShouldSucceed().Data.GetProperty("scalePod");
        events = await app.EventsOf(podId);
        Assert.Equal(events.Single(e => e.Data is Kraud.Domain.Pods.PodScaled).Version, scaled.GetProperty("version").GetInt32());
        Assert.Equal(2, scaled.GetProperty("replicas").GetInt32());
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task scaling_up_places_new_replicas_and_scaling_down_stops_the_extra_ones()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("scaled");
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");

        (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 3) { replicas } }", new { id = pod.Id() })).ShouldSucceed();
        var three = await tenant.WaitForPodAsync(pod.Id(),
            p => p.State() == "RUNNING" && p.Instances().Count == 3, TimeSpan.FromSeconds(30), "three replicas run");
        Assert.Equal(3, three.Instances().Select(i => i.GetProperty("hostId").GetString()).Distinct().Count());

        (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 1) { replicas } }", new { id = pod.Id() })).ShouldSucceed();
        var one = await tenant.WaitForPodAsync(pod.Id(),
            p => p.State() == "RUNNING" && p.Instances().Count == 1, TimeSpan.FromSeconds(30), "one replica is left");
        Assert.Equal(1, one.GetProperty("replicas").GetInt32());
        var gone = three.Instances().Select(i => Guid.Parse(i.Id())).Except(one.Instances().Select(i => Guid.Parse(i.Id())));
        Assert.All(gone, vm => Assert.DoesNotContain(app.Drivers, d => d.Running.Contains(vm)));
    }

    [Fact]
    public async Task restarting_a_pod_replaces_each_microvm_on_its_host()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("restarted", replicas: 2);
        var before = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");

        (await tenant.Gql("mutation($id: ID!) { restartPod(id: $id) { state } }", new { id = pod.Id() })).ShouldSucceed();
        var after = await tenant.WaitForPodAsync(pod.Id(),
            p => p.State() == "RUNNING" && p.Instances().Count == 2 && p.Instances().All(i => before.Instances().All(b => b.Id() != i.Id())),
            TimeSpan.FromSeconds(30), "both replicas run as new microVMs");
        Assert.Equal(before.Instances().Select(i => i.GetProperty("hostId").GetString()).Order(),
            after.Instances().Select(i => i.GetProperty("hostId").GetString()).Order());
        Assert.All(before.Instances(), old => Assert.DoesNotContain(app.Drivers, d => d.Running.Contains(Guid.Parse(old.Id()))));
    }
}
