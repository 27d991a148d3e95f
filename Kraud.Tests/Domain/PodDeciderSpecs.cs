using System.Collections.Immutable;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Tests.Domain;

public class PodDeciderSpecs
{
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 3, 12, 0, TimeSpan.Zero);
    private static readonly Guid PodId = Guid.Parse("11111111-1111-1111-1111-111111111111");
    private static readonly Guid Tenant = Guid.Parse("22222222-2222-2222-2222-222222222222");
    private static readonly Principal Admin = new("t1", Role.Admin, Tenant, "admin");
    private static readonly Guid HostA = Guid.NewGuid(), HostB = Guid.NewGuid(), HostC = Guid.NewGuid();

    private static PodSpec Spec(bool confidential = false) =>
        new("web", "default", "nginx:1.27", [], ImmutableDictionary<string, string>.Empty, 2, 512, null, confidential, 0);

    private static Pod Given(params object[] events) => Fold.Events<Pod>(events);

    private static (Pod State, IReadOnlyList<object> Events) When(Pod state, PodCommand command)
    {
        var events = PodDecider.Decide(command, state);
        return (events.Aggregate(state, (s, e) => s.Evolve(e)), events);
    }

    private static Pod Placed(int replicas = 3)
    {
        var requested = Given(new PodRequested(PodId, Tenant, Spec(), replicas, "token:t1", Now));
        var hosts = new[] { HostA, HostB, HostC };
        return When(requested, new ApplyPlacement(PodId, Enumerable.Range(0, replicas).Select(r => new ReplicaPlacement(r, hosts[r], $"h{r}")).ToList(), null, Now)).State;
    }

    private static Pod Running(int replicas = 3) => Placed(replicas).Instances.Aggregate(Placed(replicas),
        (pod, i) => When(pod, new RecordVmReport(PodId, i.VmId, i.HostId, new VmBooted(12.5), Now)).State);

    [Fact]
    public void the_same_create_again_appends_nothing_and_another_create_on_its_id_is_a_conflict()
    {
        var create = new CreatePod(PodId, Tenant, Spec(), 3, Admin, Now);
        var (created, _) = When(Pod.Initial, create);

        Assert.Empty(PodDecider.Decide(create with { At = Now.AddSeconds(1) }, created));
        Assert.Equal("CONFLICT", Assert.Throws<DomainException>(() => PodDecider.Decide(create with { Replicas = 2 }, created)).ContractCode);
        Assert.Equal("CONFLICT", Assert.Throws<DomainException>(() => PodDecider.Decide(create with { TenantId = Guid.NewGuid() }, created)).ContractCode);
        Assert.Equal("CONFLICT", Assert.Throws<DomainException>(() => PodDecider.Decide(create with { Spec = Spec() with { Name = "other" } }, created)).ContractCode);
    }

    [Fact]
    public void creating_a_pod_requests_it_and_leaves_it_pending()
    {
        var (state, events) = When(Pod.Initial, new CreatePod(PodId, Tenant, Spec(), 3, Admin, Now));
        var requested = Assert.IsType<PodRequested>(Assert.Single(events));
        Assert.Equal(3, requested.Replicas);
        Assert.Equal(PodState.Pending, state.State);
        Assert.Equal([0, 1, 2], state.Unplaced);
    }

    [Theory]
    [InlineData("Web", 2, 512, 1, "name")]
    [InlineData("web", 0, 512, 1, "cpu")]
    [InlineData("web", 2, 16, 1, "memoryMiB")]
    [InlineData("web", 2, 512, 0, "replicas")]
    [InlineData("web", 2, 512, 51, "replicas")]
    public void a_pod_with_invalid_input_is_refused_with_a_validation_error_naming_the_field(string name, int cpu, int memory, int replicas, string field)
    {
        var spec = Spec() with { Name = name, Cpu = cpu, MemoryMiB = memory };
        var error = Assert.Throws<DomainException>(() => PodDecider.Decide(new CreatePod(PodId, Tenant, spec, replicas, Admin, Now), Pod.Initial));
        Assert.Equal(ErrorCode.Validation, error.Code);
        Assert.Contains(field, error.Message);
    }

    [Fact]
    public void a_confidential_pod_cannot_have_more_than_one_replica()
    {
        var error = Assert.Throws<DomainException>(() => PodDecider.Decide(new CreatePod(PodId, Tenant, Spec(confidential: true), 2, Admin, Now), Pod.Initial));
        Assert.Equal(ErrorCode.Validation, error.Code);
        Assert.Contains("SEV-SNP", error.Message);
    }

    [Fact]
    public void placement_schedules_every_replica_with_a_deterministic_microvm_id()
    {
        var pod = Placed();
        Assert.Equal(PodState.Scheduled, pod.State);
        Assert.Equal(3, pod.Instances.Select(i => i.HostId).Distinct().Count());
        Assert.All(pod.Instances, i => Assert.Equal(Pod.VmIdFor(PodId, i.Replica, 0), i.VmId));
        Assert.Empty(pod.Unplaced);
    }

    [Fact]
    public void a_pod_is_booting_until_every_replica_reports_running_then_running()
    {
        var pod = Placed();
        var first = pod.Instances[0];
        pod = When(pod, new RecordVmReport(PodId, first.VmId, first.HostId, new VmBooted(10), Now)).State;
        Assert.Equal(PodState.Booting, pod.State);
        Assert.Equal(PodState.Running, Running().State);
        Assert.All(Running().Instances, i => Assert.Equal(12.5, i.BootMs));
    }

    [Fact]
    public void a_report_for_a_microvm_the_pod_does_not_have_changes_nothing()
    {
        var pod = Running();
        Assert.Empty(PodDecider.Decide(new RecordVmReport(PodId, Guid.NewGuid(), HostA, new VmFailed("boom"), Now), pod));
        Assert.Empty(PodDecider.Decide(new RecordVmReport(PodId, pod.Instances[0].VmId, HostB, new VmFailed("wrong host"), Now), pod));
    }

    [Fact]
    public void a_duplicated_boot_report_changes_nothing()
    {
        var pod = Running();
        var vm = pod.Instances[0];
        Assert.Empty(PodDecider.Decide(new RecordVmReport(PodId, vm.VmId, vm.HostId, new VmBooted(1), Now), pod));
    }

    [Fact]
    public void a_failed_boot_makes_the_pod_failed_with_the_hosts_reason_and_frees_its_capacity()
    {
        var before = Placed();
        var vm = before.Instances[1];
        var after = When(before, new RecordVmReport(PodId, vm.VmId, vm.HostId, new VmFailed("image not found"), Now)).State;
        Assert.Equal(PodState.Failed, after.State);
        Assert.Equal("image not found", after.Reason);
        Assert.Equal([vm.VmId], PodReactions.ReleasedVms(before, after).Select(i => i.VmId));
    }

    [Fact]
    public void deleting_a_pod_stops_every_microvm_and_it_is_stopped_when_the_last_one_reports()
    {
        var pod = Running();
        var (deleting, _) = When(pod, new DeletePod(PodId, Admin, Now));
        Assert.Equal(PodState.Stopping, deleting.State);
        Assert.Equal(3, PodReactions.HostCommands(pod, deleting).OfType<PodReactions.Stop>().Count());

        var state = deleting;
        IReadOnlyList<object> last = [];
        foreach (var vm in deleting.Instances)
            (state, last) = When(state, new RecordVmReport(PodId, vm.VmId, vm.HostId, new VmStopped(), Now));
        Assert.Equal(PodState.Stopped, state.State);
        Assert.IsType<PodStopped>(last[^1]);
    }

    [Fact]
    public void a_pod_being_deleted_refuses_other_changes_with_a_precondition_error()
    {
        var (deleting, _) = When(Running(), new DeletePod(PodId, Admin, Now));
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() => PodDecider.Decide(new ScalePod(PodId, 5, Admin, Now), deleting)).Code);
    }

    [Fact]
    public void scaling_down_stops_the_highest_replicas_and_scaling_up_leaves_new_ones_unplaced()
    {
        var pod = Running();
        var (down, _) = When(pod, new ScalePod(PodId, 1, Admin, Now));
        var stops = PodReactions.HostCommands(pod, down).OfType<PodReactions.Stop>().Select(s => s.Instance.Replica).Order();
        Assert.Equal([1, 2], stops);
        Assert.Equal(PodState.Running, down.State);

        var (up, _) = When(Running(), new ScalePod(PodId, 5, Admin, Now));
        Assert.Equal([3, 4], up.Unplaced);
        Assert.Equal(PodState.Pending, up.State);
    }

    [Fact]
    public void restarting_boots_a_new_generation_on_the_same_host_and_stops_the_old_one()
    {
        var pod = Running(1);
        var old = pod.Instances[0];
        var (restarted, events) = When(pod, new RestartPod(PodId, Admin, Now));
        var fresh = restarted.Live.Single();
        Assert.Equal(old.HostId, fresh.HostId);
        Assert.NotEqual(old.VmId, fresh.VmId);
        Assert.Equal(1, fresh.Generation);
        Assert.Equal(Pod.VmIdFor(PodId, 0, 1), fresh.VmId);
        var reactions = PodReactions.HostCommands(pod, restarted);
        Assert.Contains(reactions, r => r is PodReactions.Boot b && b.Instance.VmId == fresh.VmId);
        Assert.Contains(reactions, r => r is PodReactions.Stop s && s.Instance.VmId == old.VmId);
        Assert.IsType<PodRestarted>(Assert.Single(events));
    }

    [Fact]
    public void evicting_a_replica_for_its_owner_stops_that_microvm_and_leaves_the_replica_to_be_placed_again()
    {
        var owner = new ResourceOwner("kubernetes deployment", Guid.NewGuid(), "shop/web");
        var pod = Running() with { Owner = owner };
        var victim = pod.Instances.Single(i => i.Replica == 1);

        var refused = Assert.Throws<DomainException>(() => PodDecider.Decide(new EvictPodReplica(PodId, victim.VmId, "deleted", Admin, Now), pod));
        Assert.Contains("shop/web", refused.Message);

        var (state, events) = When(pod, new EvictPodReplica(PodId, victim.VmId, "Kubernetes pod web-x was deleted", Admin, Now, OnBehalfOf: owner.Id));
        var evicted = Assert.IsType<PodReplicaEvicted>(Assert.Single(events));
        Assert.Equal((victim.VmId, victim.HostId, "Kubernetes pod web-x was deleted"), (evicted.VmId, evicted.HostId, evicted.Reason));
        Assert.Equal(VmPhase.Stopping, state.Instance(victim.VmId)!.Phase);
        Assert.Equal([1], state.Unplaced);
        Assert.Empty(PodDecider.Decide(new EvictPodReplica(PodId, victim.VmId, "again", Admin, Now, owner.Id), state));
        Assert.Equal(ErrorCode.NotFound,
            Assert.Throws<DomainException>(() => PodDecider.Decide(new EvictPodReplica(PodId, Guid.NewGuid(), "none", Admin, Now, owner.Id), state)).Code);
    }

    [Fact]
    public void an_unschedulable_verdict_is_recorded_once_with_its_reason()
    {
        var pod = Given(new PodRequested(PodId, Tenant, Spec(), 1, "token:t1", Now));
        var (state, events) = When(pod, new ApplyPlacement(PodId, [], "no room", Now));
        Assert.Single(events);
        Assert.Equal(PodState.Unschedulable, state.State);
        Assert.Equal("no room", state.Reason);
        Assert.Empty(PodDecider.Decide(new ApplyPlacement(PodId, [], "no room", Now), state));
    }

    [Fact]
    public void a_refusal_dates_from_the_first_verdict_whatever_reasons_follow_and_ends_with_a_placement()
    {
        var pod = Given(new PodRequested(PodId, Tenant, Spec(), 1, "token:t1", Now));
        Assert.Null(pod.UnschedulableSince);
        var refused = When(pod, new ApplyPlacement(PodId, [], "no room", Now)).State;
        Assert.Equal(Now, refused.UnschedulableSince);
        var refusedAgain = When(refused, new ApplyPlacement(PodId, [], "no room in fsn1-b", Now.AddSeconds(4))).State;
        Assert.Equal(Now, refusedAgain.UnschedulableSince); // the retries of one refusal go on; a second refusal starts none
        var placed = When(refusedAgain, new ApplyPlacement(PodId, [new ReplicaPlacement(0, HostA, "h0")], null, Now.AddSeconds(5))).State;
        Assert.Null(placed.UnschedulableSince);
    }

    [Fact]
    public void a_failed_replica_is_replaced_only_after_its_back_off_and_the_back_off_doubles()
    {
        var before = Placed(1);
        var vm = before.Instances[0];
        var failed = When(before, new RecordVmReport(PodId, vm.VmId, vm.HostId, new VmFailed("crashed"), Now)).State;
        Assert.Equal(TimeSpan.FromSeconds(1), failed.RestartBackoff(0));
        Assert.Null(before.NextReplacementAt);
        Assert.Equal(Now.AddSeconds(1), failed.NextReplacementAt); // the reconciler's deadline
        Assert.Empty(PodDecider.Decide(new ReplaceFailedReplicas(PodId, Now.AddMilliseconds(500)), failed));

        var (replaced, events) = When(failed, new ReplaceFailedReplicas(PodId, Now.AddSeconds(1)));
        Assert.IsType<PodReplicaReplaced>(Assert.Single(events));
        Assert.Null(replaced.NextReplacementAt);
        Assert.Equal([0], replaced.Unplaced);
        Assert.Empty(PodReactions.ReleasedVms(failed, replaced));

        var again = When(replaced, new ApplyPlacement(PodId, [new ReplicaPlacement(0, HostB, "h1")], null, Now)).State;
        Assert.Equal(1, again.Live.Single().Generation);
        Assert.Equal(TimeSpan.FromSeconds(2), again.RestartBackoff(0));
    }

    [Fact]
    public void a_confidential_pods_failed_replica_is_not_replaced()
    {
        var pod = Given(new PodRequested(PodId, Tenant, Spec(confidential: true), 1, "token:t1", Now),
            new PodReplicaScheduled(PodId, 0, 0, Pod.VmIdFor(PodId, 0, 0), HostA, "sev", Now),
            new PodReplicaFailed(PodId, Pod.VmIdFor(PodId, 0, 0), HostA, "crashed", Now));
        Assert.Empty(PodDecider.Decide(new ReplaceFailedReplicas(PodId, Now.AddHours(1)), pod));
        Assert.Null(pod.NextReplacementAt);
    }

    [Fact]
    public void commands_for_a_pod_that_does_not_exist_are_not_found()
    {
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<DomainException>(() => PodDecider.Decide(new DeletePod(PodId, Admin, Now), Pod.Initial)).Code);
    }

    private static readonly VolumeMount BlockMount = new(Guid.NewGuid(), "/data", false, Kraud.Domain.Volumes.VolumeClass.Block);

    [Fact]
    public void a_pod_that_mounts_a_writable_block_volume_runs_one_replica()
    {
        var spec = Spec() with { Volumes = [BlockMount] };
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => PodDecider.Decide(new CreatePod(PodId, Tenant, spec, 2, Admin, Now), Pod.Initial)).Code);
        var single = When(Pod.Initial, new CreatePod(PodId, Tenant, spec, 1, Admin, Now)).State;
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => PodDecider.Decide(new ScalePod(PodId, 2, Admin, Now), single)).Code);
        var readOnly = Spec() with { Volumes = [BlockMount with { ReadOnly = true }] };
        Assert.Single(PodDecider.Decide(new CreatePod(PodId, Tenant, readOnly, 3, Admin, Now), Pod.Initial));
    }

    [Fact]
    public void attaching_a_volume_to_a_running_pod_restarts_its_microvms_with_it()
    {
        var running = Running();
        var gfs = BlockMount with { Class = Kraud.Domain.Volumes.VolumeClass.Gfs };
        var (after, events) = When(running, new AttachPodVolume(PodId, gfs, Admin, Now));
        Assert.IsType<PodVolumeAttached>(events[0]);
        Assert.Equal(3, Assert.IsType<PodRestarted>(events[1]).Replicas.Count);
        Assert.Equal(gfs, Assert.Single(after.Spec.Mounts));
        Assert.Equal(3, PodReactions.HostCommands(running, after).OfType<PodReactions.Boot>().Count());

        var (detached, more) = When(after, new DetachPodVolume(PodId, gfs.VolumeId, Admin, Now));
        Assert.IsType<PodVolumeDetached>(more[0]);
        Assert.Empty(detached.Spec.Mounts);
    }

    [Fact]
    public void an_encrypted_ephemeral_disk_is_recorded_and_its_erasure_too_when_the_vm_stops_or_its_host_fails()
    {
        var placed = Placed(2);
        var (a, b) = (placed.Instances[0], placed.Instances[1]);
        var (booted, events) = When(placed, new RecordVmReport(PodId, a.VmId, a.HostId, new VmBooted(10, EncryptedEphemeralGiB: 8), Now));
        Assert.Equal(8, Assert.Single(events.OfType<EphemeralDiskEncrypted>()).SizeGiB);
        booted = When(booted, new RecordVmReport(PodId, b.VmId, b.HostId, new VmBooted(10, EncryptedEphemeralGiB: 8), Now)).State;

        var (_, lost) = When(booted, new RecordVmReport(PodId, a.VmId, a.HostId, new VmHostFailed("host failed"), Now));
        Assert.Contains("only in its memory", Assert.Single(lost.OfType<EphemeralDiskErased>()).Reason);

        var stopping = When(booted, new DeletePod(PodId, Admin, Now)).State;
        var (_, stopped) = When(stopping, new RecordVmReport(PodId, b.VmId, b.HostId, new VmStopped(EphemeralErased: true), Now));
        Assert.Equal(b.VmId, Assert.Single(stopped.OfType<EphemeralDiskErased>()).VmId);
        var (_, unconfirmed) = When(stopping, new RecordVmReport(PodId, b.VmId, b.HostId, new VmStopped(), Now));
        Assert.Empty(unconfirmed.OfType<EphemeralDiskErased>());
    }
}
