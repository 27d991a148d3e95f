using System.Collections.Immutable;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Confidential;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.HostRuntime.Confidential;

namespace Kraud.Tests.Domain;

/// <summary>The SEV-SNP attestation rules without a database: measurement, the verifier and the pod decider.</summary>
public sealed class AttestationSpecs : IDisposable
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private static readonly Guid PodId = Guid.NewGuid(), Tenant = Guid.NewGuid(), HostId = Guid.NewGuid();
    private static readonly Principal Admin = new("t1", Role.Admin, Tenant, "admin");
    private const string HostName = "sev-host";

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"kraud-sev-{Guid.NewGuid():N}");
    private readonly SimulatedSevSnpAuthority _authority;
    private readonly SevSnpFirmware _firmware;
    private readonly AttestationTrust _trust;

    public AttestationSpecs()
    {
        _authority = SimulatedSevSnpAuthority.LoadOrCreate(_directory);
        _firmware = new SevSnpFirmware(HostName, _authority);
        _trust = new AttestationTrust([_authority.Root]);
    }

    private static PodSpec Spec => new("enclave", "default", "vault:1.18", ["vault", "server"],
        new Dictionary<string, string> { ["B"] = "2", ["A"] = "1" }, 2, 1024, null, true, 10);

    private static MicroVmSpec VmSpec(Guid vmId, PodSpec spec) =>
        new(vmId, PodId, Tenant, 0, 0, spec.Image, spec.Command, spec.Env, spec.Cpu, spec.MemoryMiB, spec.EphemeralGiB, true);

    private static string Expected => LaunchConfigurations.For(Spec).Measurement();

    [Fact]
    public void the_measurement_is_sha256_over_a_canonical_configuration_that_does_not_depend_on_env_order()
    {
        var reordered = Spec with { Env = new SortedDictionary<string, string> { ["A"] = "1", ["B"] = "2" } };
        Assert.Equal(Expected, LaunchConfigurations.For(reordered).Measurement());
        Assert.Matches("^[0-9a-f]{64}$", Expected);
        Assert.Equal(Expected, LaunchConfigurations.For(VmSpec(Guid.NewGuid(), Spec)).Measurement());
    }

    [Fact]
    public void the_measurement_changes_with_every_part_of_the_launch_configuration()
    {
        var config = LaunchConfigurations.For(Spec);
        LaunchConfiguration[] changed =
        [
            config with { Image = "vault:1.19" }, config with { Command = ["vault", "server", "-dev"] },
            config with { Env = new Dictionary<string, string> { ["A"] = "1", ["B"] = "3" } }, config with { Cpu = 3 },
            config with { MemoryMiB = 2048 }, config with { EphemeralGiB = 11 }, config with { Volumes = [new LaunchVolume("v1", "/data", false)] },
        ];
        Assert.Equal(changed.Length, changed.Select(c => c.Measurement()).Append(Expected).Distinct().Count() - 1);
    }

    [Fact]
    public void a_report_signed_by_a_certified_host_key_over_the_expected_measurement_verifies()
    {
        var vmId = Guid.NewGuid();
        var verdict = AttestationVerifier.Verify(_firmware.Report(VmSpec(vmId, Spec)), Expected, vmId, HostName, _trust, Now);
        Assert.True(verdict.Verified, verdict.Reason);
        Assert.Equal(Expected, verdict.Measurement);
    }

    [Fact]
    public void a_report_of_a_tampered_launch_configuration_fails_with_a_measurement_mismatch()
    {
        var vmId = Guid.NewGuid();
        var tampered = VmSpec(vmId, Spec) with { Env = new Dictionary<string, string> { ["A"] = "1", ["B"] = "2", ["LD_PRELOAD"] = "/evil.so" } };
        var verdict = AttestationVerifier.Verify(_firmware.Report(tampered), Expected, vmId, HostName, _trust, Now);
        Assert.False(verdict.Verified);
        Assert.StartsWith("measurement mismatch", verdict.Reason);
    }

    /// <summary>ForeignKey: the host's genuine chain, but signed by a key it does not certify. ForeignChain: a consistent chain under a root of its own, which it brings along.</summary>
    [Theory]
    [InlineData(AttestationForgery.ForeignKey, "the report's signature does not verify")]
    [InlineData(AttestationForgery.ForeignChain, "does not lead to a trusted root")]
    public void a_report_signed_by_a_key_outside_the_trusted_chain_fails(AttestationForgery forgery, string reason)
    {
        var vmId = Guid.NewGuid();
        var verdict = AttestationVerifier.Verify(_firmware.Report(VmSpec(vmId, Spec), forgery), Expected, vmId, HostName, _trust, Now);
        Assert.False(verdict.Verified);
        Assert.Contains(reason, verdict.Reason);
    }

    [Fact]
    public void a_report_for_another_microvm_or_from_another_hosts_key_fails()
    {
        var vmId = Guid.NewGuid();
        var report = _firmware.Report(VmSpec(vmId, Spec));
        var other = Guid.NewGuid();
        Assert.Equal($"the report is for microVM {vmId}, not {other}", AttestationVerifier.Verify(report, Expected, other, HostName, _trust, Now).Reason);
        Assert.Contains("belongs to host 'sev-host'", AttestationVerifier.Verify(report, Expected, vmId, "other-host", _trust, Now).Reason);
        Assert.Contains("no attestation report", AttestationVerifier.Verify(null, Expected, vmId, HostName, _trust, Now).Reason);
    }

    [Fact]
    public void a_confidential_pod_records_its_expected_measurement_when_it_is_requested()
    {
        var events = PodDecider.Decide(new CreatePod(PodId, Tenant, Spec, 1, Admin, Now), Pod.Initial);
        var measured = Assert.IsType<PodLaunchMeasured>(events[1]);
        Assert.Equal(Expected, measured.Measurement);
        var pod = Fold.Events<Pod>(events);
        Assert.Equal(new PodAttestation(Expected, false, null), pod.Attestation);
        Assert.Null(Fold.Events<Pod>(PodDecider.Decide(new CreatePod(PodId, Tenant, Spec with { Confidential = false }, 1, Admin, Now), Pod.Initial)).Attestation);
    }

    private Pod Scheduled(out Guid vmId)
    {
        var pod = Fold.Events<Pod>(PodDecider.Decide(new CreatePod(PodId, Tenant, Spec, 1, Admin, Now), Pod.Initial));
        pod = PodDecider.Decide(new ApplyPlacement(PodId, [new ReplicaPlacement(0, HostId, HostName)], null, Now), pod).Aggregate(pod, (s, e) => s.Evolve(e));
        vmId = pod.Instances[0].VmId;
        return pod;
    }

    [Fact]
    public void a_confidential_microvm_runs_only_once_its_report_verified_and_the_pod_says_when()
    {
        var pod = Scheduled(out var vmId);
        var events = PodDecider.Decide(new RecordVmReport(PodId, vmId, HostId,
            new VmBooted(5, new AttestationEvidence(_firmware.Report(VmSpec(vmId, Spec)), _trust)), Now), pod);
        Assert.Collection(events, e => Assert.IsType<PodReplicaAttested>(e), e => Assert.IsType<PodReplicaRunning>(e));
        var after = events.Aggregate(pod, (s, e) => s.Evolve(e));
        Assert.Equal(PodState.Running, after.State);
        Assert.Equal(new PodAttestation(Expected, true, Now), after.Attestation);
        var restarted = PodDecider.Decide(new RestartPod(PodId, Admin, Now), after).Aggregate(after, (s, e) => s.Evolve(e));
        Assert.False(restarted.Attestation!.Verified);
    }

    [Fact]
    public void a_confidential_microvm_whose_report_fails_leaves_the_pod_failed_with_the_reason()
    {
        var pod = Scheduled(out var vmId);
        var events = PodDecider.Decide(new RecordVmReport(PodId, vmId, HostId,
            new VmBooted(5, new AttestationEvidence(_firmware.Report(VmSpec(vmId, Spec), AttestationForgery.ForeignKey), _trust)), Now), pod);
        Assert.Collection(events, e => Assert.IsType<PodReplicaAttestationFailed>(e), e => Assert.IsType<PodReplicaFailed>(e));
        var after = events.Aggregate(pod, (s, e) => s.Evolve(e));
        Assert.Equal(PodState.Failed, after.State);
        Assert.StartsWith("attestation failed: the report's signature does not verify", after.Reason);
        Assert.False(after.Attestation!.Verified);
        Assert.Empty(after.ReplaceableFailures(Now.AddHours(1)));

        var unreported = PodDecider.Decide(new RecordVmReport(PodId, vmId, HostId, new VmBooted(5), Now), pod);
        Assert.IsType<PodReplicaAttestationFailed>(unreported[0]);
    }

    public void Dispose()
    {
        _firmware.Dispose();
        _authority.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
