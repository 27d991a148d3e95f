using System.Collections.Immutable;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.Scheduling;
using Kraud.Domain.Volumes;

namespace Kraud.Tests.Domain;

public class VolumeDeciderSpecs
{
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 3, 12, 0, TimeSpan.Zero);
    private static readonly Guid VolumeId = Guid.Parse("33333333-3333-3333-3333-333333333333");
    private static readonly Guid Tenant = Guid.Parse("22222222-2222-2222-2222-222222222222");
    private static readonly Principal Admin = new("t1", Role.Admin, Tenant, "admin");
    private static readonly Guid PodA = Guid.NewGuid(), PodB = Guid.NewGuid();

    private static Host Storage(string name, string zone = "z1", int nvme = 1000, HostState state = HostState.Ready, HostRole role = HostRole.Storage) =>
        Host.Initial with { Id = Host.IdFor(name), Name = name, Zone = zone, Role = role, State = state, NvmeGiB = nvme, Exists = true };

    private static (Volume State, IReadOnlyList<object> Events) When(Volume state, VolumeCommand command)
    {
        var events = VolumeDecider.Decide(command, state);
        return (events.Aggregate(state, (s, e) => s.Evolve(e)), events);
    }

    private static Volume Requested(VolumeClass c = VolumeClass.Block, string? zone = null) =>
        When(Volume.Initial, new CreateVolume(VolumeId, Tenant, "data", c, 100, zone, Admin, Now)).State;

    private static Volume Placed(Volume v, IEnumerable<Host> fleet)
    {
        var result = VolumePlacement.Place(v, fleet);
        return When(v, new ApplyVolumePlacement(v.Id, result.Hosts, result.Refusal, Now)).State;
    }

    private static Volume Ready(Volume v, Guid host, Guid? newKey = null) =>
        When(v, new RecordReplicaReport(v.Id, host, new ReplicaReady(true, newKey, newKey is null ? null : "kek-1"), Now)).State;

    /// <summary>Placed on three hosts of z1 and every replica reported ready: the key maker first.</summary>
    private static Volume Healthy(IReadOnlyList<Host> fleet)
    {
        var v = Placed(Requested(), fleet);
        var maker = v.Replicas.Single(r => r.MakesKey);
        v = Ready(v, maker.HostId, Guid.NewGuid());
        return v.Replicas.Where(r => !r.MakesKey).Aggregate(v, (s, r) => Ready(s, r.HostId));
    }

    private static List<Host> Fleet() =>
        [Storage("s1"), Storage("s2"), Storage("s3"), Storage("s4"), Storage("t1", "z2"), Storage("t2", "z2"), Storage("c1", role: HostRole.Compute)];

    [Fact]
    public void replicas_go_to_distinct_ready_storage_hosts_of_one_zone_and_only_one_of_them_makes_the_key()
    {
        var v = Placed(Requested(), Fleet());
        Assert.Equal(VolumeState.Provisioning, v.State);
        Assert.Equal(3, v.Replicas.Select(r => r.HostId).Distinct().Count());
        Assert.Equal("z1", v.Zone);
        Assert.All(v.Replicas, r => Assert.StartsWith("s", r.HostName));
        Assert.Single(v.Replicas, r => r.MakesKey);
    }

    [Fact]
    public void the_first_placement_takes_every_replica_or_none()
    {
        var fleet = new List<Host> { Storage("s1"), Storage("s2"), Storage("s3", state: HostState.Cordoned), Storage("s4", nvme: 50) };
        var result = VolumePlacement.Place(Requested(), fleet);
        Assert.Empty(result.Hosts);
        Assert.Contains("3 READY storage hosts with 100 GiB free", result.Refusal);
        Assert.Contains("z1 has 2", result.Refusal);
    }

    [Fact]
    public void a_volume_is_healthy_once_every_replica_is_and_encrypted_only_as_the_hosts_confirmed()
    {
        var v = Healthy(Fleet());
        Assert.Equal(VolumeState.Healthy, v.State);
        Assert.True(v.Encrypted);
        var unconfirmed = v.Evolve(new VolumeReplicaHealthy(v.Id, v.Replicas[0].HostId, Encrypted: false, Now));
        Assert.False(unconfirmed.Encrypted);
    }

    [Fact]
    public void replicas_without_the_key_wait_for_the_key_maker_and_are_provisioned_with_the_key_once_it_exists()
    {
        var before = Requested();
        var placed = Placed(before, Fleet());
        var first = VolumeReactions.HostCommands(before, placed).Cast<VolumeReactions.Provision>().ToList();
        Assert.Equal(placed.Replicas.Single(r => r.MakesKey).HostId, Assert.Single(first).Replica.HostId);
        Assert.False(first[0].WithKey);

        var keyed = Ready(placed, first[0].Replica.HostId, Guid.NewGuid());
        var rest = VolumeReactions.HostCommands(placed, keyed).Cast<VolumeReactions.Provision>().ToList();
        Assert.Equal(2, rest.Count);
        Assert.All(rest, p => Assert.True(p.WithKey));
    }

    [Fact]
    public void a_replica_sent_its_set_up_is_sent_it_again_until_the_last_attempt_then_fails_and_is_placed_on_another_host()
    {
        var placed = Placed(Requested(), Fleet());
        var maker = placed.Replicas.Single(r => r.MakesKey);
        var waiting = placed.Replicas.First(r => !r.MakesKey);
        Assert.Equal(ReplicaAnswer.Verdict.SendAgain, ReplicaAnswer.Judge(placed, maker.HostId, maker.Since, attempt: 1, attempts: 3));
        Assert.Equal(ReplicaAnswer.Verdict.GiveUp, ReplicaAnswer.Judge(placed, maker.HostId, maker.Since, attempt: 3, attempts: 3));
        // The others were not sent anything yet: they wait for the key, and no deadline runs for them.
        Assert.False(placed.AwaitsAnswer(waiting));

        var unanswered = When(placed, new RecordReplicaReport(placed.Id, maker.HostId, ReplicaAnswer.Unanswered(maker.HostName, 3, 30), Now));
        Assert.Contains("did not answer", Assert.Single(unanswered.Events.OfType<VolumeReplicaFailed>()).Reason);
        var replaced = Placed(unanswered.State, Fleet());
        Assert.Equal(3, replaced.Replicas.Count);
        Assert.DoesNotContain(replaced.Replicas, r => r.HostId == maker.HostId);
    }

    [Fact]
    public void a_replica_that_answered_or_was_placed_again_has_no_deadline_left()
    {
        var placed = Placed(Requested(), Fleet());
        var maker = placed.Replicas.Single(r => r.MakesKey);
        var keyed = Ready(placed, maker.HostId, Guid.NewGuid());
        Assert.Equal(ReplicaAnswer.Verdict.Answered, ReplicaAnswer.Judge(keyed, maker.HostId, maker.Since, attempt: 3, attempts: 3));
        // The key exists: the others were sent their set-up now, and wait for an answer.
        Assert.All(keyed.Replicas.Where(r => !r.MakesKey), r => Assert.True(keyed.AwaitsAnswer(r)));
        // A deadline for an earlier replica on the same host is not this one's.
        Assert.Equal(ReplicaAnswer.Verdict.Answered, ReplicaAnswer.Judge(placed, maker.HostId, maker.Since.AddSeconds(-1), attempt: 1, attempts: 3));
        // A block export answers by saying where it serves; it is not healthy until a compute host formats it.
        var exported = placed.Evolve(new VolumeReplicaExported(placed.Id, maker.HostId, "127.0.0.1", 10809, Now));
        Assert.Equal(ReplicaAnswer.Verdict.Answered, ReplicaAnswer.Judge(exported, maker.HostId, maker.Since, attempt: 1, attempts: 3));
        Assert.All(exported.Replicas.Where(r => !r.MakesKey), r => Assert.True(exported.AwaitsAnswer(r)));
    }

    [Fact]
    public void losing_a_replica_degrades_the_volume_and_a_replacement_in_the_same_zone_on_another_host_heals_it()
    {
        var fleet = Fleet();
        var v = Healthy(fleet);
        var lostHost = v.Replicas[0].HostId;
        var (degraded, events) = When(v, new RecordReplicaReport(v.Id, lostHost, new ReplicaHostFailed("host failed"), Now));
        Assert.IsType<VolumeReplicaLost>(Assert.Single(events));
        Assert.Equal(VolumeState.Degraded, degraded.State);
        Assert.Equal(1, degraded.Unplaced);
        Assert.Contains(VolumeReactions.HostCommands(v, degraded), c => c is VolumeReactions.Destroy d && d.HostId == lostHost);

        var replaced = Placed(degraded, fleet.Select(h => h.Id == lostHost ? h with { State = HostState.Failed } : h));
        var newcomer = replaced.Replicas.Single(r => v.Replica(r.HostId) is null);
        Assert.Equal("s4", newcomer.HostName);
        Assert.False(newcomer.MakesKey);
        Assert.True(Assert.IsType<VolumeReactions.Provision>(Assert.Single(VolumeReactions.HostCommands(degraded, replaced))).WithKey);
        Assert.Equal(VolumeState.Healthy, Ready(replaced, newcomer.HostId).State);
    }

    [Fact]
    public void below_its_write_quorum_of_healthy_replicas_a_volume_is_unavailable()
    {
        var v = Healthy(Fleet());
        v = When(v, new RecordReplicaReport(v.Id, v.Replicas[0].HostId, new ReplicaHostFailed("x"), Now)).State;
        v = When(v, new RecordReplicaReport(v.Id, v.Replicas[0].HostId, new ReplicaFailed("disk"), Now)).State;
        Assert.Equal(VolumeState.Unavailable, v.State);
        Assert.False(v.Usable);
        Assert.Contains("fewer than a write needs (2)", v.Reason);
    }

    [Fact]
    public void a_red_volume_with_one_of_its_two_replicas_gone_is_degraded_and_usable_and_unavailable_with_none()
    {
        var v = Placed(Requested(VolumeClass.Red), Fleet());
        var maker = v.Replicas.Single(r => r.MakesKey);
        v = Ready(v, maker.HostId, Guid.NewGuid());
        v = Ready(v, v.Replicas.Single(r => !r.MakesKey).HostId);
        Assert.Equal(VolumeState.Healthy, v.State);
        Assert.Equal(1, Volume.WriteQuorum(VolumeClass.Red));

        var one = When(v, new RecordReplicaReport(v.Id, v.Replicas[0].HostId, new ReplicaHostFailed("x"), Now)).State;
        Assert.Equal(VolumeState.Degraded, one.State);
        Assert.True(one.Usable);
        var none = When(one, new RecordReplicaReport(one.Id, v.Replicas[1].HostId, new ReplicaHostFailed("x"), Now)).State;
        Assert.Equal(VolumeState.Unavailable, none.State);
    }

    [Fact]
    public void a_placement_refusal_dates_from_its_first_verdict_and_ends_when_the_replicas_are_placed()
    {
        var v = Requested();
        var (refused, events) = When(v, new ApplyVolumePlacement(v.Id, [], "no storage host has room", Now));
        Assert.IsType<VolumePlacementRefused>(Assert.Single(events));
        Assert.Equal(Now, refused.PlacementRefusedSince);
        var other = When(refused, new ApplyVolumePlacement(v.Id, [], "no storage host in z1", Now.AddSeconds(3))).State;
        Assert.Equal(Now, other.PlacementRefusedSince);
        Assert.Null(Placed(other, Fleet()).PlacementRefusedSince);
    }

    [Fact]
    public void a_host_a_replica_failed_on_is_not_chosen_again_for_that_volume()
    {
        var fleet = Fleet();
        var v = Healthy(fleet);
        var failed = v.Replicas[0].HostId;
        v = When(v, new RecordReplicaReport(v.Id, failed, new ReplicaFailed("checksum errors"), Now)).State;
        var result = VolumePlacement.Place(v, fleet);
        Assert.DoesNotContain(result.Hosts, h => h.HostId == failed);
        Assert.Single(result.Hosts);
    }

    [Fact]
    public void a_block_volume_attaches_to_one_pod_at_a_time_and_gfs_to_many()
    {
        var block = Healthy(Fleet());
        block = When(block, new AttachVolume(VolumeId, PodA, null, "/data", false, Admin, Now)).State;
        Assert.Equal(ErrorCode.Conflict, Assert.Throws<DomainException>(() => VolumeDecider.Decide(new AttachVolume(VolumeId, PodB, null, "/data", false, Admin, Now), block)).Code);
        Assert.Empty(VolumeDecider.Decide(new AttachVolume(VolumeId, PodA, null, "/data", false, Admin, Now), block));

        var gfs = Requested(VolumeClass.Gfs);
        gfs = When(gfs, new AttachVolume(VolumeId, PodA, null, "/shared", false, Admin, Now)).State;
        gfs = When(gfs, new AttachVolume(VolumeId, PodB, null, "/shared", true, Admin, Now)).State;
        Assert.Equal(2, gfs.Attachments.Count);
    }

    [Theory]
    [InlineData("data")]
    [InlineData("/")]
    [InlineData("/a/../etc")]
    [InlineData("")]
    public void a_mount_path_must_be_absolute_and_plain(string path) =>
        Assert.Equal(ErrorCode.Validation,
            Assert.Throws<DomainException>(() => VolumeDecider.Decide(new AttachVolume(VolumeId, PodA, null, path, false, Admin, Now), Requested())).Code);

    [Fact]
    public void a_pod_in_another_zone_cannot_mount_a_zonal_volume()
    {
        var v = Healthy(Fleet());
        var e = Assert.Throws<DomainException>(() => VolumeDecider.Decide(new AttachVolume(VolumeId, PodA, "z2", "/data", false, Admin, Now), v));
        Assert.Equal(ErrorCode.Precondition, e.Code);
    }

    [Fact]
    public void deleting_an_attached_volume_is_a_precondition_failure_and_deleting_a_detached_one_erases_every_replica_before_it_is_deleted()
    {
        var v = When(Healthy(Fleet()), new AttachVolume(VolumeId, PodA, null, "/data", false, Admin, Now)).State;
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() => VolumeDecider.Decide(new DeleteVolume(VolumeId, Admin, Now), v)).Code);

        v = When(v, new DetachVolume(VolumeId, PodA, Admin, Now)).State;
        var (deleting, events) = When(v, new DeleteVolume(VolumeId, Admin, Now));
        Assert.IsType<VolumeDeletionRequested>(Assert.Single(events));
        Assert.Equal(3, VolumeReactions.HostCommands(v, deleting).OfType<VolumeReactions.Destroy>().Count());
        Assert.Equal(0, deleting.Unplaced);

        var state = deleting;
        foreach (var r in deleting.Replicas.Take(2)) state = When(state, new RecordReplicaReport(VolumeId, r.HostId, new ReplicaErased(), Now)).State;
        Assert.False(state.Deleted);
        var (deleted, last) = When(state, new RecordReplicaReport(VolumeId, deleting.Replicas[2].HostId, new ReplicaErased(), Now));
        Assert.Collection(last, e => Assert.IsType<VolumeReplicaErased>(e), e => Assert.IsType<VolumeKeysDestroyed>(e), e => Assert.IsType<VolumeDeleted>(e));
        Assert.Equal(VolumeState.Deleted, deleted.State);
        Assert.Null(deleted.KeyId);
    }

    [Fact]
    public void ephemeral_volumes_are_not_created_but_set_on_the_pod()
    {
        var e = Assert.Throws<DomainException>(() => VolumeDecider.Decide(new CreateVolume(VolumeId, Tenant, "scratch", VolumeClass.Ephemeral, 10, null, Admin, Now), Volume.Initial));
        Assert.Contains("ephemeralGiB", e.Message);
    }

    [Fact]
    public void a_replica_that_brings_a_key_of_its_own_when_the_volume_has_one_fails()
    {
        var fleet = Fleet();
        var v = Healthy(fleet);
        v = When(v, new RecordReplicaReport(v.Id, v.Replicas[0].HostId, new ReplicaHostFailed("x"), Now)).State;
        v = Placed(v, fleet.Select(h => h.Name == "s1" ? h with { State = HostState.Failed } : h));
        var newcomer = v.Replicas.Single(r => r.Phase == ReplicaPhase.Provisioning);
        var (_, events) = When(v, new RecordReplicaReport(v.Id, newcomer.HostId, new ReplicaReady(true, Guid.NewGuid(), "kek-1"), Now));
        Assert.IsType<VolumeReplicaFailed>(Assert.Single(events));
    }

    [Fact]
    public void volumes_tell_a_pod_where_it_may_run_or_why_it_must_wait()
    {
        var healthy = Healthy(Fleet());
        Assert.Equal("z1", Assert.IsType<VolumeAffinity.Go>(VolumeAffinity.For(null, [(VolumeId, healthy)])).Zone);
        Assert.IsType<VolumeAffinity.Wait>(VolumeAffinity.For(null, [(VolumeId, Placed(Requested(), Fleet()))]));
        Assert.Contains("volume's zone", Assert.IsType<VolumeAffinity.Refuse>(VolumeAffinity.For("z2", [(VolumeId, healthy)])).Reason);
        Assert.Contains("does not exist", Assert.IsType<VolumeAffinity.Refuse>(VolumeAffinity.For(null, [(VolumeId, null)])).Reason);
        var other = healthy with { Id = Guid.NewGuid(), Zone = "z2" };
        Assert.Contains("one zone", Assert.IsType<VolumeAffinity.Refuse>(VolumeAffinity.For(null, [(VolumeId, healthy), (other.Id, other)])).Reason);
    }

    [Fact]
    public void a_volume_an_app_made_is_attached_detached_and_deleted_only_on_the_apps_behalf()
    {
        var app = new ResourceOwner(ResourceOwner.App, Guid.NewGuid(), "pg");
        var (v, events) = When(Volume.Initial, new CreateVolume(VolumeId, Tenant, "data", VolumeClass.Block, 10, null, Admin, Now, app));
        Assert.Equal(app, Assert.IsType<VolumeOwnedBy>(events[1]).Owner);

        foreach (var command in new VolumeCommand[]
                 {
                     new AttachVolume(VolumeId, PodA, null, "/data", false, Admin, Now),
                     new DetachVolume(VolumeId, PodA, Admin, Now),
                     new DeleteVolume(VolumeId, Admin, Now),
                     new DeleteVolume(VolumeId, Admin, Now, OnBehalfOf: Guid.NewGuid()),
                 })
        {
            var refused = Assert.Throws<DomainException>(() => VolumeDecider.Decide(command, v));
            Assert.Equal(ErrorCode.Precondition, refused.Code);
            Assert.Contains($"Volume data is part of app 'pg' ({app.Id})", refused.Message);
        }

        var attached = When(v, new AttachVolume(VolumeId, PodA, null, "/data", false, Admin, Now, app.Id)).State;
        var detached = When(attached, new DetachVolume(VolumeId, PodA, Admin, Now, app.Id)).State;
        Assert.Empty(detached.Attachments);
        Assert.True(When(detached, new DeleteVolume(VolumeId, Admin, Now, app.Id)).State.Deleting);
    }

    private static readonly Guid Worker = Guid.NewGuid(), Vm = Guid.NewGuid();

    private static Volume Exported(Volume v, Guid host, int port) =>
        When(v, new RecordReplicaReport(v.Id, host, new ReplicaReady(true, Export: new ExportAddress("127.0.0.1", port)), Now)).State;

    /// <summary>Placed on three real storage hosts, every replica serving its (empty) export, formatted by a compute host.</summary>
    private static Volume HealthyOnExports(VolumeClass c = VolumeClass.Block)
    {
        var v = Placed(Requested(c), Fleet());
        v = v.Replicas.Select((r, i) => (r, i)).Aggregate(v, (s, x) => Exported(s, x.r.HostId, 10800 + x.i));
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now)).State;
        return When(v, new RecordWorkReport(v.Id, Worker, new VolumeFormatDone(Guid.NewGuid(), "kek-1"), Now)).State;
    }

    [Fact]
    public void a_volume_on_block_exports_is_formatted_by_a_compute_host_once_every_replica_serves_and_its_storage_hosts_never_make_a_key()
    {
        var v = Placed(Requested(), Fleet());
        var first = v.Replicas[0];
        var (exported, events) = When(v, new RecordReplicaReport(v.Id, first.HostId, new ReplicaReady(true, Export: new ExportAddress("127.0.0.1", 10800)), Now));
        Assert.IsType<VolumeReplicaExported>(Assert.Single(events));
        Assert.True(exported.OnBlockExports);
        // The others, which waited for a key, are set up now without one.
        var provisions = VolumeReactions.HostCommands(v, exported).OfType<VolumeReactions.Provision>().ToList();
        Assert.Equal(exported.Replicas.Where(r => r.HostId != first.HostId).Select(r => r.HostId).Order(), provisions.Select(p => p.Replica.HostId).Order());
        Assert.All(provisions, p => Assert.False(p.WithKey));
        Assert.False(exported.NeedsWorker); // not before every replica serves

        var all = exported.Replicas.Skip(1).Aggregate(exported, (s, r) => Exported(s, r.HostId, 10801));
        Assert.True(all.NeedsWorker);
        var (formatting, started) = When(all, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now));
        Assert.IsType<VolumeFormatStarted>(Assert.Single(started));
        Assert.Empty(When(formatting, new StartVolumeWork(v.Id, Guid.NewGuid(), "c2", null, false, Now)).Events); // one worker at a time

        // A report from another host (an abandoned worker) changes nothing; the worker's own makes the volume healthy.
        Assert.Empty(When(formatting, new RecordWorkReport(v.Id, Guid.NewGuid(), new VolumeFormatDone(Guid.NewGuid(), "kek-1"), Now)).Events);
        var (healthy, done) = When(formatting, new RecordWorkReport(v.Id, Worker, new VolumeFormatDone(Guid.NewGuid(), "kek-1"), Now));
        Assert.Equal(Worker, Assert.IsType<VolumeKeyCreated>(done[0]).HostId);
        Assert.Equal(3, done.OfType<VolumeReplicaHealthy>().Count(h => h.Encrypted));
        Assert.Equal(VolumeState.Healthy, healthy.State);
        Assert.True(healthy.Encrypted);
        Assert.Null(healthy.Work);
    }

    [Fact]
    public void a_key_maker_lost_before_it_answered_hands_the_task_to_a_waiting_replica_which_is_told_to_set_up_at_once()
    {
        var v = Placed(Requested(), Fleet());
        var maker = v.Replicas.Single(r => r.MakesKey);
        var (lost, _) = When(v, new RecordReplicaReport(v.Id, maker.HostId, new ReplicaHostFailed("its host stopped answering"), Now));

        // The others waited for the key maker; with no spare host for a replacement they would wait for good.
        var heir = Assert.Single(lost.Replicas, r => r.MakesKey);
        Assert.Equal(2, lost.Replicas.Count);
        var provision = Assert.IsType<VolumeReactions.Provision>(Assert.Single(VolumeReactions.HostCommands(v, lost).OfType<VolumeReactions.Provision>()));
        Assert.Equal((heir.HostId, false), (provision.Replica.HostId, provision.WithKey));
        Assert.True(lost.AwaitsAnswer(heir));
        // The replacement placed later waits for the heir's key, as any replica that does not make it.
        var spare = Storage("s9");
        var replaced = When(lost, new ApplyVolumePlacement(v.Id, [new ReplicaHost(spare.Id, spare.Name, "z1")], null, Now)).State;
        Assert.False(replaced.Replica(spare.Id)!.MakesKey);
        Assert.Empty(VolumeReactions.HostCommands(lost, replaced).OfType<VolumeReactions.Provision>());
    }

    [Fact]
    public void a_replica_lost_between_the_first_export_and_the_format_is_replaced_by_one_told_to_set_up_at_once()
    {
        var v = Placed(Requested(), Fleet());
        v = Exported(v, v.Replicas.Single(r => r.MakesKey).HostId, 10800);
        var dead = v.Replicas.First(r => !r.MakesKey).HostId;
        v = When(v, new RecordReplicaReport(v.Id, dead, new ReplicaHostFailed("its host stopped answering"), Now)).State;
        var spare = Storage("s9");
        var (replaced, _) = When(v, new ApplyVolumePlacement(v.Id, [new ReplicaHost(spare.Id, spare.Name, "z1")], null, Now));

        // No key exists yet, and none will before every replica serves: a replacement that waited for one would wait forever.
        var provision = Assert.IsType<VolumeReactions.Provision>(Assert.Single(VolumeReactions.HostCommands(v, replaced)));
        Assert.Equal(spare.Id, provision.Replica.HostId);
        Assert.False(provision.WithKey);
        Assert.True(replaced.AwaitsAnswer(replaced.Replica(spare.Id)!));
    }

    [Fact]
    public void a_replacement_on_block_exports_is_healthy_only_after_a_resync_reported_it_equal_and_its_progress_is_recorded()
    {
        var v = HealthyOnExports();
        var lost = v.Replicas[0].HostId;
        v = When(v, new RecordReplicaReport(v.Id, lost, new ReplicaHostFailed("gone"), Now)).State;
        var spare = Storage("s4");
        v = When(v, new ApplyVolumePlacement(v.Id, [new ReplicaHost(spare.Id, spare.Name, "z1")], null, Now)).State;
        Assert.False(v.Replica(spare.Id)!.MakesKey);
        var exported = Exported(v, spare.Id, 10900);
        Assert.Equal(VolumeState.Degraded, exported.State); // served is not healthy: it holds nothing yet

        var (syncing, started) = When(exported, new StartVolumeWork(v.Id, Worker, "c1", Vm, false, Now));
        var resync = Assert.IsType<VolumeReplicaResyncStarted>(Assert.Single(started));
        Assert.Equal((spare.Id, Vm), (resync.HostId, resync.VmId));
        var progressed = When(syncing, new RecordWorkReport(v.Id, Worker, new ResyncProgressed(spare.Id, 10, 100, 5), Now)).State;
        Assert.Equal(new ResyncProgress(10, 100, 5), progressed.Replica(spare.Id)!.Resync);
        Assert.Equal(VolumeState.Degraded, progressed.State);

        // A failed attempt frees the work for another try; a finished one makes the replica healthy.
        var failed = When(progressed, new RecordWorkReport(v.Id, Worker, new WorkFailed(spare.Id, "the guest stopped"), Now)).State;
        Assert.True(failed.NeedsWorker);
        var (healed, done) = When(progressed, new RecordWorkReport(v.Id, Worker, new ResyncDone(spare.Id, 100, 2, 3.5), Now));
        Assert.IsType<VolumeReplicaResynced>(done[0]);
        Assert.Equal(VolumeState.Healthy, healed.State);
        Assert.Equal(new ResyncProgress(100, 100, 50), healed.Replica(spare.Id)!.Resync);
    }

    [Fact]
    public void work_whose_host_is_gone_is_abandoned_and_a_replica_the_guest_lost_from_its_quorum_fails()
    {
        var v = HealthyOnExports();
        var lost = v.Replicas[0].HostId;
        v = When(v, new RecordReplicaReport(v.Id, lost, new ReplicaBad(0, 512, "microVM's quorum: write failed: connection reset"), Now)).State;
        Assert.Equal(VolumeState.Degraded, v.State);
        Assert.Contains(lost, v.FailedOn);
        var spare = Storage("s4");
        v = Exported(When(v, new ApplyVolumePlacement(v.Id, [new ReplicaHost(spare.Id, spare.Name, "z1")], null, Now)).State, spare.Id, 10900);
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now)).State;
        Assert.Empty(When(v, new StartVolumeWork(v.Id, Guid.NewGuid(), "c2", null, true, Now)).Events); // only the current worker is abandoned
        var (abandoned, events) = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, true, Now));
        Assert.Contains("gone", Assert.IsType<VolumeWorkFailed>(Assert.Single(events)).Reason);
        Assert.True(abandoned.NeedsWorker);
    }

    [Fact]
    public void an_admin_asks_for_a_scrub_which_a_compute_host_runs_once_every_replica_is_healthy_and_an_outvoted_replica_is_replaced()
    {
        var v = HealthyOnExports();
        var (asked, events) = When(v, new ScrubVolume(v.Id, Admin, Now));
        Assert.IsType<VolumeScrubRequested>(Assert.Single(events));
        Assert.Empty(When(asked, new ScrubVolume(v.Id, Admin, Now)).Events); // asked twice, scrubbed once
        Assert.True(asked.NeedsWorker);

        var (scrubbing, started) = When(asked, new StartVolumeWork(v.Id, Worker, "c1", Vm, false, Now));
        Assert.Equal(Vm, Assert.IsType<VolumeScrubStarted>(Assert.Single(started)).VmId);
        Assert.True(scrubbing.Work!.Scrub);

        var rotten = v.Replicas[0].HostId;
        var (after, found) = When(scrubbing, new RecordWorkReport(v.Id, Worker,
            new ScrubDone(1 << 30, 12, [new ReplicaDifference(rotten, 48 << 20, 65536, "read outvoted by its peers")], null), Now));
        var bad = Assert.IsType<VolumeReplicaBad>(found[0]);
        Assert.Equal((rotten, 48L << 20, 65536L), (bad.HostId, bad.Offset, bad.Length));
        Assert.Equal(1, Assert.IsType<VolumeScrubbed>(found[1]).BadReplicas);
        Assert.Equal(VolumeState.Degraded, after.State);
        Assert.Contains(rotten, after.FailedOn);
        Assert.Equal(1, after.Unplaced); // the scheduler places a replacement, filled from the two that agree
        Assert.Equal(Now, after.LastScrubbedAt);
        Assert.Null(after.ScrubRequestedAt);
        Assert.Null(after.Work);
        // Its storage host is told to erase it.
        Assert.Contains(VolumeReactions.HostCommands(scrubbing, after), c => c is VolumeReactions.Destroy d && d.HostId == rotten);
    }

    [Fact]
    public void a_scrub_never_fails_more_replicas_than_leave_a_write_quorum_and_names_the_rest()
    {
        var v = When(HealthyOnExports(), new ScrubVolume(VolumeId, Admin, Now)).State;
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now)).State;
        var (after, found) = When(v, new RecordWorkReport(v.Id, Worker, new ScrubDone(1 << 30, 12,
            [new ReplicaDifference(v.Replicas[0].HostId, 0, 512, "a"), new ReplicaDifference(v.Replicas[1].HostId, 4096, 512, "b")], null), Now));
        Assert.Single(found.OfType<VolumeReplicaBad>());
        Assert.Contains("differs at byte 4096", found.OfType<VolumeScrubbed>().Single().Unresolved);
        Assert.Equal(VolumeState.Degraded, after.State);
    }

    [Fact]
    public void the_round_asks_for_a_scrub_only_of_volumes_on_block_exports_not_scrubbed_within_the_interval()
    {
        var week = TimeSpan.FromDays(7);
        var system = Principal.System("volume-scrub");
        var v = HealthyOnExports();
        Assert.Empty(When(v, new ScrubVolume(v.Id, system, Now.AddDays(6), week)).Events);
        Assert.Single(When(v, new ScrubVolume(v.Id, system, Now.AddDays(7), week)).Events);
        var scrubbed = v with { LastScrubbedAt = Now.AddDays(5) };
        Assert.Empty(When(scrubbed, new ScrubVolume(v.Id, system, Now.AddDays(8), week)).Events);
        // Simulated storage holds no bytes: the round passes it over, and an admin is told why.
        var simulated = Healthy(Fleet());
        Assert.Empty(When(simulated, new ScrubVolume(simulated.Id, system, Now.AddDays(30), week)).Events);
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() => When(simulated, new ScrubVolume(simulated.Id, Admin, Now))).Code);
        var member = new Principal("m1", Role.Member, Tenant, "member");
        Assert.Equal(ErrorCode.Forbidden, Assert.Throws<DomainException>(() => When(v, new ScrubVolume(v.Id, member, Now))).Code);
    }

    [Fact]
    public void two_red_copies_that_differ_fail_neither_the_volume_is_degraded_with_where_and_healthy_again_once_a_scrub_finds_them_equal()
    {
        var v = HealthyOnExports(VolumeClass.Red);
        Assert.Equal(2, v.Replicas.Count);
        v = When(v, new ScrubVolume(v.Id, Admin, Now)).State;
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now)).State;
        // Two copies have no majority: QEMU names neither, and nothing (no checksum in the ciphertext) says which one is right.
        const string where = "no majority of the replicas agrees on 2 extents, 128 KiB in all (each still after 8 reads): at byte 41943040 (64 KiB), at byte 62914560 (64 KiB)";
        var (diverged, events) = When(v, new RecordWorkReport(v.Id, Worker, new ScrubDone(1 << 30, 12, [], where), Now));
        Assert.Equal(where, Assert.IsType<VolumeScrubbed>(Assert.Single(events)).Unresolved);
        Assert.Equal(2, diverged.Healthy); // both copies kept: failing one would be a coin toss with the data
        Assert.Equal(VolumeState.Degraded, diverged.State);
        Assert.True(diverged.Usable);
        Assert.Contains("41943040", diverged.Reason);
        Assert.Contains("write the data there again", diverged.Reason);

        // The owner wrote the data again (to both copies); the next scrub finds them equal.
        v = When(diverged, new ScrubVolume(v.Id, Admin, Now.AddHours(1))).State;
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now.AddHours(1))).State;
        var equal = When(v, new RecordWorkReport(v.Id, Worker, new ScrubDone(1 << 30, 12, [], null), Now.AddHours(1))).State;
        Assert.Null(equal.ScrubDifference);
        Assert.Equal(VolumeState.Healthy, equal.State);
    }

    [Fact]
    public void a_red_copy_that_fails_reads_is_replaced_from_the_other_the_volume_degraded_meanwhile_and_healthy_again_with_no_difference_left()
    {
        // The guest's quorum read from the other copy and named the failing one (QEMU's QUORUM_REPORT_BAD with the error).
        var v = HealthyOnExports(VolumeClass.Red);
        var failing = v.Replicas[0].HostId;
        var (degraded, events) = When(v, new RecordReplicaReport(v.Id, failing, new ReplicaBad(8 << 20, 4096, "read failed: Input/output error"), Now));
        Assert.Equal(failing, Assert.IsType<VolumeReplicaBad>(Assert.Single(events)).HostId);
        Assert.Equal(VolumeState.Degraded, degraded.State); // one copy serves a RED volume's reads and writes
        Assert.True(degraded.Usable);
        Assert.Contains("1 of 2 replicas are healthy", degraded.Reason);
        Assert.Equal(1, degraded.Unplaced);
        Assert.Contains(VolumeReactions.HostCommands(v, degraded), c => c is VolumeReactions.Destroy d && d.HostId == failing);
        Assert.Equal(VolumeState.Healthy, Replaced(degraded).State);

        // A scrub that met the failing copy names it with its error and leaves no difference behind: the other copy was the
        // only one that could be read there, so there was nothing to decide between.
        v = When(HealthyOnExports(VolumeClass.Red), new ScrubVolume(VolumeId, Admin, Now)).State;
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now)).State;
        failing = v.Replicas[1].HostId;
        var (scrubbed, found) = When(v, new RecordWorkReport(v.Id, Worker,
            new ScrubDone(1 << 30, 12, [new ReplicaDifference(failing, 8 << 20, 4096, "read failed: Input/output error")], null), Now));
        Assert.Equal(failing, Assert.IsType<VolumeReplicaBad>(found[0]).HostId);
        Assert.Null(Assert.IsType<VolumeScrubbed>(found[1]).Unresolved);
        Assert.Equal(VolumeState.Degraded, scrubbed.State);
        Assert.Null(scrubbed.ScrubDifference);
        var healed = Replaced(scrubbed);
        Assert.Equal(VolumeState.Healthy, healed.State);
        Assert.Null(healed.Reason);
    }

    /// <summary>The missing replica placed on a spare storage host, served, and filled and checked by a compute host.</summary>
    private static Volume Replaced(Volume v)
    {
        var spare = Storage("s9");
        v = When(v, new ApplyVolumePlacement(v.Id, [new ReplicaHost(spare.Id, spare.Name, "z1")], null, Now)).State;
        v = Exported(v, spare.Id, 10900);
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", Vm, false, Now)).State;
        return When(v, new RecordWorkReport(v.Id, Worker, new ResyncDone(spare.Id, 100, 2, 3.5), Now)).State;
    }

    [Fact]
    public void the_round_picks_the_longest_uncompared_due_volumes_and_a_storage_host_takes_part_in_no_more_scrubs_at_once_than_the_bound()
    {
        var week = TimeSpan.FromDays(7);
        var at = Now.AddDays(30);
        var template = HealthyOnExports();
        Volume On(DateTimeOffset? scrubbed, params string[] hosts) => template with
        {
            Id = Guid.NewGuid(),
            LastScrubbedAt = scrubbed,
            Replicas = template.Replicas.Select((r, i) => r with { HostId = Host.IdFor(hosts[i]), HostName = hosts[i] }).ToImmutableList(),
        };
        var never = On(null, "a", "b", "c");              // uncompared since it was made: first
        var sharesA = On(Now.AddDays(1), "a", "d", "e");  // due, but a takes part in the first one's scrub
        var apart = On(Now.AddDays(2), "d", "e", "f");    // due, on other hosts
        var recent = On(at.AddDays(-1), "g", "h", "i");   // scrubbed yesterday
        var running = On(Now, "j", "k", "l") with { ScrubRequestedAt = at.AddHours(-1) };
        var besideRunning = On(Now.AddHours(36), "j", "m", "n"); // due, but j is busy with a scrub asked for earlier

        var volumes = new[] { recent, besideRunning, apart, sharesA, running, never };
        Assert.Equal([never.Id, apart.Id], ScrubRound.Pick(volumes, at, week, perStorageHost: 1));
        Assert.Equal([never.Id, sharesA.Id, besideRunning.Id, apart.Id], ScrubRound.Pick(volumes, at, week, perStorageHost: 2));
        Assert.Equal([never.Id, sharesA.Id, besideRunning.Id, apart.Id], ScrubRound.Pick(volumes, at, week, perStorageHost: 0));
        // A volume that cannot serve is not scrubbed: its replicas are being replaced.
        var lost = never with
        {
            Replicas = never.Replicas.SetItem(0, never.Replicas[0] with { Phase = ReplicaPhase.Failed })
            .SetItem(1, never.Replicas[1] with { Phase = ReplicaPhase.Failed })
        };
        Assert.Equal(VolumeState.Unavailable, lost.State);
        Assert.Empty(ScrubRound.Pick([lost], at, week, perStorageHost: 1));
    }

    [Fact]
    public void a_failed_scrub_is_not_asked_again_at_once_and_a_replica_a_running_guest_reported_bad_is_replaced()
    {
        var v = When(HealthyOnExports(), new ScrubVolume(VolumeId, Admin, Now)).State;
        v = When(v, new StartVolumeWork(v.Id, Worker, "c1", null, false, Now)).State;
        var failed = When(v, new RecordWorkReport(v.Id, Worker, new WorkFailed(null, "connection reset"), Now)).State;
        Assert.Null(failed.ScrubRequestedAt);
        Assert.False(failed.NeedsWorker);

        var bad = failed.Replicas[2].HostId;
        var (after, events) = When(failed, new RecordReplicaReport(v.Id, bad, new ReplicaBad(8192, 512, "write failed: Input/output error"), Now));
        Assert.Equal(8192, Assert.IsType<VolumeReplicaBad>(Assert.Single(events)).Offset);
        Assert.Equal(VolumeState.Degraded, after.State);
        Assert.Empty(When(after, new RecordReplicaReport(v.Id, bad, new ReplicaBad(8192, 512, "again"), Now)).Events); // reported twice, replaced once
    }
}
