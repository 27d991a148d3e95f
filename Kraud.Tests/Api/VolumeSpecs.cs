using System.Text;
using System.Text.Json;
using Kraud.Api.Volumes;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Events;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Tests.Api;

[Collection(VolumeCollection.Name)]
public class VolumeSpecs(KraudApp app)
{
    private TimeSpan Recovery => TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 30);

    private async Task<List<object>> EventsOf(string id) => (await app.EventsOf(Guid.Parse(id))).Select(e => e.Data).ToList();

    private async Task<VolumeKeyRecord?> KeyRecordAsync(string volumeId)
    {
        await using var session = app.Store.QuerySession();
        return await session.LoadAsync<VolumeKeyRecord>(Guid.Parse(volumeId));
    }

    private async Task PowerBackOnAsync(string hostId)
    {
        app.Agent(hostId).PowerOn();
        await app.WaitForHostStateAsync(hostId, "READY", TimeSpan.FromSeconds(30), "the host recovered");
    }

    [Fact]
    public async Task a_block_volume_gets_three_encrypted_replicas_on_distinct_storage_hosts_of_one_zone_and_becomes_healthy()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = await tenant.CreateVolumeAsync("pgdata", "BLOCK", 20);
        Assert.Contains(created.State(), new[] { "PENDING", "PROVISIONING" });
        Assert.False(created.GetProperty("encrypted").GetBoolean());

        var volume = await tenant.WaitForVolumeAsync(created.Id(), "HEALTHY");
        var hosts = volume.ReplicaHosts();
        Assert.Equal(3, hosts.Count);
        Assert.Equal(3, hosts.Distinct().Count());
        Assert.Equal(3, volume.GetProperty("desiredReplicas").GetInt32());
        Assert.All(hosts, h => Assert.Equal("Storage", app.Agent(h).Definition.Role));
        Assert.All(hosts, h => Assert.Equal(volume.GetProperty("zone").GetString(), app.Agent(h).Definition.Zone));
        Assert.All(volume.GetProperty("replicas").EnumerateArray(), r => Assert.Equal("HEALTHY", r.GetProperty("state").GetString()));
        Assert.True(volume.GetProperty("encrypted").GetBoolean());

        // Envelope encryption: the control plane keeps the data key only wrapped; the fleet's KEK unwraps it to exactly
        // the key every replica host holds in memory.
        var record = await KeyRecordAsync(created.Id());
        Assert.NotNull(record);
        var dataKey = app.Agent(hosts[0]).Kek.Unwrap(record.Key);
        Assert.Equal(32, dataKey.Length);
        Assert.All(hosts, h => Assert.Equal(dataKey, app.Agent(h).Replicas.DataKeyOf(Guid.Parse(created.Id()))));

        var events = await EventsOf(created.Id());
        Assert.IsType<VolumeRequested>(events[0]);
        Assert.Equal(3, events.OfType<VolumeReplicaScheduled>().Count());
        Assert.Single(events.OfType<VolumeReplicaScheduled>(), e => e.MakesKey);
        Assert.Equal(record.Key.KeyId, Assert.Single(events.OfType<VolumeKeyCreated>()).KeyId);
        Assert.Equal(3, events.OfType<VolumeReplicaHealthy>().Count(e => e.Encrypted));
    }

    [Fact]
    public async Task a_red_volume_keeps_two_replicas_and_warns_that_its_data_must_be_reconstructible()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = await tenant.CreateVolumeAsync("archive", "RED", 50, zone: "fsn1-b");
        Assert.Contains(created.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("reconstruct"));
        var volume = await tenant.WaitForVolumeAsync(created.Id(), "HEALTHY");
        Assert.Equal(2, volume.ReplicaHosts().Distinct().Count());
        Assert.All(volume.ReplicaHosts(), h => Assert.Equal("fsn1-b", app.Agent(h).Definition.Zone));
    }

    [Fact]
    public async Task bad_volume_requests_are_refused_with_a_code_and_append_nothing()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.EventCountAsync();
        (await tenant.TryCreateVolumeAsync("scratch", "EPHEMERAL")).ShouldFailWith("VALIDATION");
        (await tenant.TryCreateVolumeAsync("huge", "BLOCK", 1_000_000)).ShouldFailWith("VALIDATION");
        (await tenant.TryCreateVolumeAsync("zero", "BLOCK", 0)).ShouldFailWith("VALIDATION");
        (await tenant.TryCreateVolumeAsync("Not_A_Label")).ShouldFailWith("VALIDATION");
        Assert.Equal(before, await tenant.EventCountAsync());

        // A zone without storage hosts: the volume waits, and says why.
        (await tenant.TryCreateVolumeAsync("nowhere", zone: "mars-1")).ShouldSucceed();
        var id = (await tenant.Gql("{ volumes { nodes { id name } } }")).ShouldSucceed().Data.GetProperty("volumes").GetProperty("nodes")
            .EnumerateArray().Single(v => v.GetProperty("name").GetString() == "nowhere").Id();
        var pending = await tenant.WaitForVolumeAsync(id, v => v.GetProperty("reason").ValueKind == JsonValueKind.String,
            TimeSpan.FromSeconds(15), "the volume says why it waits");
        Assert.Equal("PENDING", pending.State());
        var after = await tenant.EventCountAsync();
        (await tenant.TryCreateVolumeAsync("nowhere")).ShouldFailWith("CONFLICT");
        Assert.Equal(after, await tenant.EventCountAsync());
        Assert.Contains("mars-1", pending.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task a_scrub_is_asked_only_by_an_admin_or_an_operator_and_refused_for_a_volume_whose_storage_holds_no_bytes()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.CreateVolumeAsync("keys-only");
        await tenant.WaitForVolumeAsync(volume.Id(), "HEALTHY");
        const string scrub = "mutation($id: ID!) { scrubVolume(id: $id) { scrubRequested lastScrubbedAt } }";
        var member = await tenant.TokenAsync("MEMBER");
        var before = await tenant.EventCountAsync();
        (await app.Host.GraphQL(member, scrub, new { id = volume.Id() })).ShouldFailWith("FORBIDDEN");
        Assert.Contains("simulated storage", (await tenant.Gql(scrub, new { id = volume.Id() })).ShouldFailWith("PRECONDITION").FirstErrorMessage);
        var stranger = await TenantScope.CreateAsync(app);
        (await stranger.Gql(scrub, new { id = volume.Id() })).ShouldFailWith("NOT_FOUND");
        Assert.Equal(before, await tenant.EventCountAsync());
        var shown = (await tenant.Gql("query($id: ID!) { volume(id: $id) { scrubRequested lastScrubbedAt } }", new { id = volume.Id() })).ShouldSucceed()
            .Data.GetProperty("volume");
        Assert.False(shown.GetProperty("scrubRequested").GetBoolean());
        Assert.Equal(JsonValueKind.Null, shown.GetProperty("lastScrubbedAt").ValueKind);
    }

    [Fact]
    public async Task when_a_storage_host_fails_its_volumes_are_degraded_then_re_replicated_on_another_storage_host_of_the_zone_and_healthy_again()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("replicated", "BLOCK", 10, zone: "fsn1-a")).Id(), "HEALTHY");
        var victim = volume.ReplicaHosts()[0];
        app.Agent(victim).PowerOff();
        try
        {
            await app.WaitForHostStateAsync(victim, "FAILED", Recovery, "the storage host is FAILED");
            var healed = await tenant.WaitForVolumeAsync(volume.Id(),
                v => v.State() == "HEALTHY" && !v.ReplicaHosts().Contains(victim), Recovery, "the volume is HEALTHY again without the failed host");
            Assert.Equal(3, healed.ReplicaHosts().Distinct().Count());
            Assert.All(healed.ReplicaHosts(), h => Assert.Equal("fsn1-a", app.Agent(h).Definition.Zone));
            var replacement = healed.ReplicaHosts().Except(volume.ReplicaHosts()).Single();
            Assert.Equal("Storage", app.Agent(replacement).Definition.Role);

            // Every step is an event: lost, placed again, healthy; the replacement got the same data key.
            var events = await EventsOf(volume.Id());
            var lost = Assert.Single(events.OfType<VolumeReplicaLost>());
            Assert.Equal(Guid.Parse(victim), lost.HostId);
            var lostAt = events.IndexOf(lost);
            Assert.Contains(events.Skip(lostAt), e => e is VolumeReplicaScheduled s && s.HostId == Guid.Parse(replacement) && !s.MakesKey);
            Assert.Contains(events.Skip(lostAt), e => e is VolumeReplicaHealthy h && h.HostId == Guid.Parse(replacement));
            Assert.Equal(app.Agent(volume.ReplicaHosts()[1]).Replicas.DataKeyOf(Guid.Parse(volume.Id())),
                app.Agent(replacement).Replicas.DataKeyOf(Guid.Parse(volume.Id())));

            // In between it was DEGRADED: time travel shows the volume just after the loss.
            var at = (await app.EventsOf(Guid.Parse(volume.Id()))).Single(e => e.Data is VolumeReplicaLost).Timestamp;
            var then = (await tenant.Gql("query($id: ID!, $t: DateTime!) { volume(id: $id, asOf: $t) { state replicas { hostId } } }",
                new { id = volume.Id(), t = at.UtcDateTime.AddMilliseconds(1) })).ShouldSucceed().Data.GetProperty("volume");
            Assert.Equal("DEGRADED", then.State());
        }
        finally
        {
            await PowerBackOnAsync(victim);
        }
        // The incident review names the volume and tells how it healed.
        var incident = (await app.AsOperator("query($h: ID, $f: DateTime!, $t: DateTime!) { incident(hostId: $h, from: $f, to: $t) { affectedVolumes summary } }",
            new { h = victim, f = DateTime.UtcNow.AddMinutes(-2), t = DateTime.UtcNow.AddSeconds(1) })).ShouldSucceed().Data.GetProperty("incident");
        Assert.Contains(volume.Id(), incident.GetProperty("affectedVolumes").EnumerateArray().Select(v => v.GetString()));
        var summary = incident.GetProperty("summary").EnumerateArray().Select(l => l.GetString()!).ToList();
        Assert.Contains(summary, l => l.Contains("volume replicated lost its replica"));
        Assert.Contains(summary, l => l.Contains("volume replicated re-replicates to"));
        // The returning host erases the stale copy it kept: its key is gone, its room is free.
        await Eventually.Until(() => Task.FromResult(app.Agent(victim).Replicas.DataKeyOf(Guid.Parse(volume.Id())) is null), TimeSpan.FromSeconds(30),
            "the stale replica is erased");
    }

    [Fact]
    public async Task a_replica_its_storage_host_stops_reporting_fails_and_is_replaced_while_the_host_stays_up()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("diskdeath", "GFS", 5, zone: "fsn1-b")).Id(), "HEALTHY");
        var broken = volume.ReplicaHosts()[1];
        Assert.True(app.Agent(broken).Replicas.Lose(Guid.Parse(volume.Id())));
        var healed = await tenant.WaitForVolumeAsync(volume.Id(),
            v => v.State() == "HEALTHY" && !v.ReplicaHosts().Contains(broken), TimeSpan.FromSeconds(30), "the volume healed elsewhere");
        Assert.Equal(3, healed.ReplicaHosts().Distinct().Count());
        var failed = Assert.Single((await EventsOf(volume.Id())).OfType<VolumeReplicaFailed>());
        Assert.Contains("no longer reports", failed.Reason);
        Assert.Equal("READY", await app.HostStateAsync(broken));
    }

    /// <summary>
    /// Every storage host of fsn1-a drops the tenant's set-up commands (<paramref name="drops"/> each); once the volume is
    /// placed, only the key maker's host keeps the fault (the others are sent theirs only after the key exists). The fault
    /// is the tenant's, so other specs' volumes on these hosts are not touched.
    /// </summary>
    private async Task<(TenantScope Tenant, string VolumeId, Guid KeyMaker)> KeyMakerDropsAsync(int drops)
    {
        var tenant = await TenantScope.CreateAsync(app);
        var storage = app.Agents.All.Where(a => a.Definition is { Zone: "fsn1-a", Role: "Storage" }).ToList();
        foreach (var host in storage) host.Replicas.DropNextProvisions(tenant.Id, drops);
        var volumeId = (await tenant.CreateVolumeAsync("deaf", "BLOCK", 5, zone: "fsn1-a")).Id();
        var maker = await app.StreamCommits.UntilAsync(Guid.Parse(volumeId), async () => (await EventsOf(volumeId)).OfType<VolumeReplicaScheduled>().SingleOrDefault(e => e.MakesKey),
            e => e is not null, TimeSpan.FromSeconds(30), "the volume was placed");
        foreach (var host in storage.Where(h => h.Id != maker!.HostId)) host.Replicas.ClearFaults();
        return (tenant, volumeId, maker!.HostId);
    }

    [Fact]
    public async Task a_storage_host_that_drops_the_command_to_set_up_a_replica_is_sent_it_again_after_the_deadline()
    {
        var (tenant, volumeId, maker) = await KeyMakerDropsAsync(drops: 1);
        try
        {
            var volume = await tenant.WaitForVolumeAsync(volumeId, "HEALTHY", 60);
            Assert.Contains(maker.ToString(), volume.ReplicaHosts());
            Assert.Equal(1, app.Agent(maker.ToString()).Replicas.DroppedProvisions(tenant.Id));
            var events = await EventsOf(volumeId);
            Assert.Empty(events.OfType<VolumeReplicaFailed>());
            Assert.Equal(maker, Assert.Single(events.OfType<VolumeKeyCreated>()).HostId);
        }
        finally
        {
            app.Agent(maker.ToString()).Replicas.ClearFaults();
        }
    }

    [Fact]
    public async Task a_storage_host_that_never_answers_the_command_to_set_up_a_replica_loses_it_to_another_host()
    {
        var (tenant, volumeId, maker) = await KeyMakerDropsAsync(drops: 1_000);
        try
        {
            var volume = await tenant.WaitForVolumeAsync(volumeId, "HEALTHY", 90);
            Assert.DoesNotContain(maker.ToString(), volume.ReplicaHosts());
            Assert.Equal(3, volume.ReplicaHosts().Distinct().Count());
            Assert.Equal(4, app.Agent(maker.ToString()).Replicas.DroppedProvisions(tenant.Id)); // Fleet:ReplicaAnswerAttempts
            var failed = Assert.Single((await EventsOf(volumeId)).OfType<VolumeReplicaFailed>());
            Assert.Equal(maker, failed.HostId);
            Assert.Contains("did not answer the command to set up the replica (4 sent, 5 s each)", failed.Reason);
            Assert.Equal("READY", await app.HostStateAsync(maker.ToString()));
        }
        finally
        {
            app.Agent(maker.ToString()).Replicas.ClearFaults();
        }
    }

    [Fact]
    public async Task a_pod_that_mounts_a_volume_runs_in_the_volume_zone_and_its_microvm_holds_the_unwrapped_data_key()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("zonal", "BLOCK", 5, zone: "fsn1-b")).Id(), "HEALTHY");
        var pod = await tenant.CreatePodWithVolumeAsync("db", volume.Id());
        Assert.Equal("/data", pod.GetProperty("volumes")[0].GetProperty("mountPath").GetString());
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = running.Instances()[0];
        var host = vm.GetProperty("hostId").GetString()!;
        Assert.Equal("fsn1-b", app.Agent(host).Definition.Zone);
        var expected = app.Agent(volume.ReplicaHosts()[0]).Replicas.DataKeyOf(Guid.Parse(volume.Id()));
        Assert.Equal(expected, app.Driver(host).VolumeKeyOf(Guid.Parse(vm.Id()), Guid.Parse(volume.Id())));
        var attached = await tenant.VolumeAsync(volume.Id());
        Assert.Equal(pod.Id(), Assert.Single(attached!.Value.GetProperty("attachedTo").EnumerateArray()).GetString());

        // A pod that asks for another zone than its volume's is refused, and told why.
        var elsewhere = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("shared", "GFS", 5, zone: "fsn1-a")).Id(), "HEALTHY");
        var misplaced = await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
        {
            @in = new { name = "misplaced", image = "x:1", cpu = 1, memoryMiB = 128, zone = "fsn1-b", volumes = new[] { new { volumeId = elsewhere.Id(), mountPath = "/d" } } },
        });
        Assert.Contains("volume's zone", misplaced.ShouldFailWith("PRECONDITION").FirstErrorMessage);
    }

    [Fact]
    public async Task a_block_volume_attaches_to_one_pod_at_a_time_and_is_deleted_only_detached_with_its_keys_destroyed_on_every_replica()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("single", "BLOCK", 5)).Id(), "HEALTHY");
        var first = await tenant.CreatePodWithVolumeAsync("first", volume.Id());
        await tenant.WaitForPodAsync(first.Id(), "RUNNING");

        var second = await tenant.CreatePodAsync("second", zone: volume.GetProperty("zone").GetString());
        await tenant.WaitForPodAsync(second.Id(), "RUNNING");
        const string attach = "mutation($v: ID!, $p: ID!) { attachVolume(volumeId: $v, podId: $p, mountPath: \"/data\") { attachedTo version } }";
        (await tenant.Gql(attach, new { v = volume.Id(), p = second.Id() })).ShouldFailWith("CONFLICT");
        (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }",
            new { @in = new { name = "third", image = "x:1", cpu = 1, memoryMiB = 128, volumes = new[] { new { volumeId = volume.Id(), mountPath = "/d" } } } }))
            .ShouldFailWith("CONFLICT");
        (await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { state } }", new { id = volume.Id() })).ShouldFailWith("PRECONDITION");

        // Detached from the first pod, it moves to the second, whose microVM restarts with it.
        var secondVm = (await tenant.PodAsync(second.Id()))!.Value.Instances()[0].Id();
        (await tenant.Gql("mutation($v: ID!, $p: ID!) { detachVolume(volumeId: $v, podId: $p) { attachedTo } }", new { v = volume.Id(), p = first.Id() }))
            .ShouldSucceed();
        var moved = (await tenant.Gql(attach, new { v = volume.Id(), p = second.Id() })).ShouldSucceed().Data.GetProperty("attachVolume");
        Assert.Equal(second.Id(), Assert.Single(moved.GetProperty("attachedTo").EnumerateArray()).GetString());
        var restarted = await tenant.WaitForPodAsync(second.Id(),
            p => p.State() == "RUNNING" && p.Instances().All(i => i.Id() != secondVm), TimeSpan.FromSeconds(30), "the second pod restarted with the volume");
        var host = restarted.Instances()[0].GetProperty("hostId").GetString()!;
        Assert.NotNull(app.Driver(host).VolumeKeyOf(Guid.Parse(restarted.Instances()[0].Id()), Guid.Parse(volume.Id())));

        // Deleting the pod lets the volume go; then the volume is crypto-erased on every replica before it is DELETED.
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { state } }", new { id = second.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(second.Id(), "STOPPED");
        var detached = await tenant.WaitForVolumeAsync(volume.Id(),
            v => v.GetProperty("attachedTo").GetArrayLength() == 0, TimeSpan.FromSeconds(10), "the stopped pod let the volume go");
        (await tenant.Gql("mutation($id: ID!, $v: Int) { deleteVolume(id: $id, expectedVersion: $v) { state } }",
            new { id = volume.Id(), v = detached.GetProperty("version").GetInt32() })).ShouldSucceed();
        await tenant.WaitForVolumeAsync(volume.Id(), "DELETED");
        Assert.All(volume.ReplicaHosts(), h => Assert.Null(app.Agent(h).Replicas.DataKeyOf(Guid.Parse(volume.Id()))));
        Assert.Null(await KeyRecordAsync(volume.Id()));
        var events = await EventsOf(volume.Id());
        var destroyed = events.IndexOf(events.OfType<VolumeKeysDestroyed>().Single());
        Assert.Equal(3, events.Take(destroyed).OfType<VolumeReplicaErased>().Count());
        Assert.IsType<VolumeDeleted>(events[destroyed + 1]);
        Assert.DoesNotContain(volume.Id(), (await tenant.Gql("{ volumes { nodes { id } } }")).Body);
        // The name is free again.
        await tenant.CreateVolumeAsync("single", "BLOCK", 5);
    }

    [Fact]
    public async Task two_pods_racing_for_one_block_volume_never_both_get_it_and_a_stale_version_is_a_conflict()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("contended", "BLOCK", 5)).Id(), "HEALTHY");
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }",
            new { @in = new { name = $"racer-{i}", image = "x:1", cpu = 1, memoryMiB = 128, volumes = new[] { new { volumeId = volume.Id(), mountPath = "/d" } } } })));
        Assert.Single(results, r => r.ErrorCodes.Count == 0);
        Assert.All(results.Where(r => r.ErrorCodes.Count > 0), r => Assert.Contains("CONFLICT", r.ErrorCodes));
        var attached = (await tenant.VolumeAsync(volume.Id()))!.Value;
        Assert.Equal(1, attached.GetProperty("attachedTo").GetArrayLength());

        (await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id, expectedVersion: 1) { state } }", new { id = volume.Id() })).ShouldFailWith("CONFLICT");
    }

    [Fact]
    public async Task a_volume_below_its_write_quorum_of_healthy_replicas_is_unavailable_and_pods_that_need_it_do_not_start()
    {
        var tenant = await TenantScope.CreateAsync(app);
        // BLOCK needs 2 of its 3 copies for a write: with two hosts gone it cannot take one.
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("fragile", "BLOCK", 5, zone: "fsn1-b")).Id(), "HEALTHY");
        var spares = app.Agents.All.Where(a => a.Definition is { Zone: "fsn1-b", Role: "Storage" } && !volume.ReplicaHosts().Contains(a.Id.ToString())).ToList();
        // Every provision on a spare fails while the spec runs: the victims hold other specs' replicas too, whose
        // re-replication would otherwise use up a single injected failure and let this volume's replacement through.
        foreach (var spare in spares) spare.Replicas.FailNextProvisions(10_000, "disk controller offline");
        var victims = volume.ReplicaHosts().Take(2).ToList();
        foreach (var victim in victims) app.Agent(victim).PowerOff();
        try
        {
            var unavailable = await tenant.WaitForVolumeAsync(volume.Id(), "UNAVAILABLE", (int)Recovery.TotalSeconds);
            Assert.Contains("fewer than a write needs (2)", unavailable.GetProperty("reason").GetString());
            var pod = await tenant.CreatePodWithVolumeAsync("needs-it", volume.Id());
            var refused = await tenant.WaitForPodAsync(pod.Id(), "UNSCHEDULABLE");
            Assert.Contains("UNAVAILABLE", refused.GetProperty("reason").GetString());
            Assert.Empty(refused.Instances());
        }
        finally
        {
            foreach (var spare in spares) spare.Replicas.ClearFaults();
            foreach (var victim in victims) await PowerBackOnAsync(victim);
        }
    }

    [Fact]
    public async Task ephemeral_disk_keys_live_only_in_the_host_runtime_and_are_destroyed_on_restart_and_reschedule()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = (await tenant.Gql($"mutation($in: CreatePodInput!) {{ createPod(input: $in) {{ id }} }}",
            new { @in = new { name = "scratchy", image = "x:1", cpu = 1, memoryMiB = 128, ephemeralGiB = 4, zone = "fsn1-a" } })).ShouldSucceed()
            .Data.GetProperty("createPod");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = (await tenant.Gql("query($id: ID!) { pod(id: $id) { instances { id hostId ephemeralGiB ephemeralEncrypted } } }", new { id = pod.Id() }))
            .ShouldSucceed().Data.GetProperty("pod").GetProperty("instances")[0];
        Assert.Equal(4, vm.GetProperty("ephemeralGiB").GetInt32());
        Assert.True(vm.GetProperty("ephemeralEncrypted").GetBoolean());
        var host = vm.GetProperty("hostId").GetString()!;
        var firstKey = app.Driver(host).EphemeralKeyOf(Guid.Parse(vm.Id()));
        Assert.NotNull(firstKey);

        // Restart: a new microVM with a new key; the old key is gone, and an event says so.
        (await tenant.Gql("mutation($id: ID!) { restartPod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        var restarted = await tenant.WaitForPodAsync(pod.Id(),
            p => p.State() == "RUNNING" && p.Instances().All(i => i.Id() != vm.Id()), TimeSpan.FromSeconds(30), "the pod restarted");
        Assert.False(app.Driver(host).HoldsEphemeralKey(Guid.Parse(vm.Id())));
        var second = restarted.Instances()[0];
        Assert.NotEqual(firstKey, app.Driver(second.GetProperty("hostId").GetString()!).EphemeralKeyOf(Guid.Parse(second.Id())));
        await app.StreamCommits.UntilAsync(Guid.Parse(pod.Id()), async () => (await EventsOf(pod.Id())).OfType<EphemeralDiskErased>().Any(e => e.VmId == Guid.Parse(vm.Id())),
            erased => erased, TimeSpan.FromSeconds(10), "the erase of the first disk is recorded");

        // Reschedule: draining the host moves the replica; the key of the VM that left is destroyed too.
        var secondHost = second.GetProperty("hostId").GetString()!;
        await app.DrainAsync(secondHost);
        try
        {
            await tenant.WaitForPodAsync(pod.Id(),
                p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("hostId").GetString() != secondHost), TimeSpan.FromSeconds(30), "the pod moved");
            Assert.False(app.Driver(secondHost).HoldsEphemeralKey(Guid.Parse(second.Id())));
            await app.StreamCommits.UntilAsync(Guid.Parse(pod.Id()), async () => (await EventsOf(pod.Id())).OfType<EphemeralDiskErased>().Any(e => e.VmId == Guid.Parse(second.Id())),
                erased => erased, TimeSpan.FromSeconds(10), "the erase on reschedule is recorded");
        }
        finally
        {
            await app.UncordonAsync(secondHost);
        }
    }

    [Fact]
    public async Task volumes_of_one_tenant_do_not_exist_for_another()
    {
        var owner = await TenantScope.CreateAsync(app);
        var stranger = await TenantScope.CreateAsync(app);
        var volume = await owner.CreateVolumeAsync("private", "GFS", 5);
        var strangersPod = await stranger.CreatePodAsync("nosy");
        Assert.Null(await stranger.VolumeAsync(volume.Id()));
        Assert.DoesNotContain(volume.Id(), (await stranger.Gql("{ volumes { nodes { id } totalCount } }")).Body);
        (await stranger.Gql("mutation($id: ID!) { deleteVolume(id: $id) { state } }", new { id = volume.Id() })).ShouldFailWith("NOT_FOUND");
        (await stranger.Gql("mutation($v: ID!, $p: ID!) { attachVolume(volumeId: $v, podId: $p, mountPath: \"/x\") { id } }",
            new { v = volume.Id(), p = strangersPod.Id() })).ShouldFailWith("NOT_FOUND");
        (await stranger.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }",
            new { @in = new { name = "thief", image = "x:1", cpu = 1, memoryMiB = 128, volumes = new[] { new { volumeId = volume.Id(), mountPath = "/d" } } } }))
            .ShouldFailWith("NOT_FOUND");
        Assert.Equal(0, (await owner.VolumeAsync(volume.Id()))!.Value.GetProperty("attachedTo").GetArrayLength());
    }

    [Fact]
    public async Task the_compliance_report_and_platform_history_show_every_volume_and_ephemeral_disk_with_its_confirmed_encryption()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("evidence", "GFS", 5)).Id(), "HEALTHY");
        var pod = await tenant.CreatePodWithVolumeAsync("worker", volume.Id(), ephemeralGiB: 1);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");

        var auditor = await tenant.TokenAsync("AUDITOR");
        var result = await app.Host.Scenario(s =>
        {
            s.Get.Url("/api/exports/compliance-report?format=json");
            s.WithRequestHeader("Authorization", $"Bearer {auditor}");
            s.StatusCodeShouldBe(200);
        });
        var mine = Assert.Single(JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement.GetProperty("tenants").EnumerateArray());
        var volumes = mine.GetProperty("volumes").EnumerateArray().ToList();
        var gfs = Assert.Single(volumes, v => v.GetProperty("class").GetString() == "GFS");
        Assert.True(gfs.GetProperty("encrypted").GetBoolean());
        Assert.Contains("3 of 3 replicas confirmed encrypted", gfs.GetProperty("encryption").GetString());
        Assert.Equal("isolated machine", gfs.GetProperty("isolationBarrier").GetString());
        Assert.Equal(3, gfs.GetProperty("hosts").GetArrayLength());
        var disk = Assert.Single(volumes, v => v.GetProperty("class").GetString() == "EPHEMERAL");
        Assert.True(disk.GetProperty("encrypted").GetBoolean());
        Assert.Equal("ephemeral encryption", disk.GetProperty("isolationBarrier").GetString());
        Assert.StartsWith("all 2 volumes and ephemeral disks encrypted", mine.GetProperty("volumeEncryption").GetString());
        Assert.StartsWith("wireguard: every path between hosts", mine.GetProperty("vpcEncryption").GetString());

        var past = (await tenant.Gql("query($t: DateTime!) { platformAt(asOf: $t) { volumes { id state encrypted } } }", new { t = DateTime.UtcNow }))
            .ShouldSucceed().Data.GetProperty("platformAt").GetProperty("volumes");
        Assert.Equal("HEALTHY", Assert.Single(past.EnumerateArray(), v => v.Id() == volume.Id()).State());
    }

    [Fact]
    public async Task no_api_response_or_export_contains_key_material()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("secretive", "BLOCK", 5)).Id(), "HEALTHY");
        var pod = await tenant.CreatePodWithVolumeAsync("keeper", volume.Id(), ephemeralGiB: 2);
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = running.Instances()[0];
        var compute = app.Agent(vm.GetProperty("hostId").GetString()!);
        var record = (await KeyRecordAsync(volume.Id()))!;
        // Every GraphQL response of every test is checked against the keys held at that moment (GraphQLClient); this
        // test adds the exports, the wrapped key and the events.
        var secrets = new List<string>();
        secrets.AddRange(KeyMaterial.Forms(compute.Kek.ExportForTests()));
        secrets.AddRange(KeyMaterial.Forms(app.Agent(volume.ReplicaHosts()[0]).Replicas.DataKeyOf(Guid.Parse(volume.Id()))!));
        secrets.AddRange(KeyMaterial.Forms(app.Driver(compute.Id.ToString()).EphemeralKeyOf(Guid.Parse(vm.Id()))!));
        secrets.Add(record.Key.Sealed);

        var auditor = await tenant.TokenAsync("AUDITOR");
        // The audit log is an async projection: every body below must include what it projects of this spec.
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var bodies = new List<string>
        {
            (await tenant.Gql($"{{ volumes {{ nodes {{ {Infrastructure.Volumes.Fields} }} }} }}")).Body,
            (await tenant.Gql($"query($id: ID!) {{ volume(id: $id) {{ {Infrastructure.Volumes.Fields} }} }}", new { id = volume.Id() })).Body,
            (await tenant.Gql($"{{ pods {{ nodes {{ {Pods.Fields} volumes {{ volumeId mountPath }} instances {{ ephemeralEncrypted }} }} }} }}")).Body,
            (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type data } }", new { id = volume.Id() })).Body,
            (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type data } }", new { id = pod.Id() })).Body,
            (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id } volumes { id encrypted } } }", new { t = DateTime.UtcNow })).Body,
            (await app.AsOperator("{ auditLog(first: 500) { nodes { action resourceId outcome hash } } }")).Body,
            (await app.AsOperator("{ hosts { id name state } }")).Body,
        };
        foreach (var url in new[] { "/api/exports/audit?format=jsonl", "/api/exports/audit?format=csv", "/api/exports/compliance-report?format=json",
                     "/api/exports/compliance-report?format=html" })
        {
            var result = await app.Host.Scenario(s =>
            {
                s.Get.Url(url);
                s.WithRequestHeader("Authorization", $"Bearer {auditor}");
                s.StatusCodeShouldBe(200);
            });
            bodies.Add(await result.ReadAsTextAsync());
        }
        Assert.Contains(bodies, b => b.Contains(volume.Id()));
        foreach (var body in bodies)
            foreach (var secret in secrets)
                Assert.False(body.Contains(secret, StringComparison.Ordinal), $"a response contains key material: {body[..Math.Min(200, body.Length)]}");
        // The events name keys by id, never by value.
        var events = string.Join("\n", (await app.EventsOf(Guid.Parse(volume.Id()))).Select(e => JsonSerializer.Serialize(e.Data, e.Data.GetType())));
        foreach (var secret in secrets) Assert.DoesNotContain(secret, events);
    }
}
