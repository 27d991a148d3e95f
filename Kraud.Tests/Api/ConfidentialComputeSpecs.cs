using System.Text.Json;
using Kraud.Domain.Confidential;
using Kraud.Domain.Pods;
using Kraud.HostRuntime.Confidential;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>Confidential Compute end to end: the SEV-SNP host attests each guest and the control plane verifies it before RUNNING.</summary>
[Collection(ApiCollection.Name)]
public class ConfidentialComputeSpecs(KraudApp app)
{
    private const string Fields = "id state reason confidential instances { id hostId state } attestation { measurement verified verifiedAt }";

    private static string ExpectedMeasurement(string image, int cpu, int memoryMiB) =>
        new LaunchConfiguration(image, [], new Dictionary<string, string>(), cpu, memoryMiB, 0, []).Measurement();

    private async Task<JsonElement> Pod(TenantScope tenant, string id) =>
        (await tenant.Gql($"query($id: ID!) {{ pod(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("pod");

    private async Task<JsonElement> WaitFor(TenantScope tenant, string id, string state) =>
        await Eventually.Get(() => Pod(tenant, id), p => p.State() == state, TimeSpan.FromSeconds(30), $"pod {id} is {state}");

    private Kraud.HostRuntime.Drivers.SimulatedDriver SevDriver() => app.Driver(app.Agents.All.Single(a => a.Definition.SevSnp).Id.ToString());

    [Fact]
    public async Task a_confidential_pod_runs_only_after_its_attestation_verified_and_shows_the_measurement_and_when()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = await tenant.CreatePodAsync("vault", image: "vault:1.18", cpu: 2, memoryMiB: 1024, confidential: true);
        var pending = await Pod(tenant, created.Id());
        Assert.Equal(ExpectedMeasurement("vault:1.18", 2, 1024), pending.GetProperty("attestation").GetProperty("measurement").GetString());

        var running = await WaitFor(tenant, created.Id(), "RUNNING");
        var attestation = running.GetProperty("attestation");
        Assert.True(attestation.GetProperty("verified").GetBoolean());
        Assert.Equal(ExpectedMeasurement("vault:1.18", 2, 1024), attestation.GetProperty("measurement").GetString());
        Assert.True(attestation.GetProperty("verifiedAt").GetDateTime() > DateTime.UtcNow.AddMinutes(-1));
        var events = (await app.EventsOf(Guid.Parse(created.Id()))).Select(e => e.Data).ToList();
        Assert.True(events.FindIndex(e => e is PodReplicaAttested) < events.FindIndex(e => e is PodReplicaRunning));
    }

    [Fact]
    public async Task an_ordinary_pod_has_no_attestation()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = await tenant.CreatePodAsync("plain");
        var running = await WaitFor(tenant, created.Id(), "RUNNING");
        Assert.Equal(JsonValueKind.Null, running.GetProperty("attestation").ValueKind);
    }

    [Fact]
    public async Task a_host_that_launches_a_tampered_configuration_leaves_the_pod_failed_with_a_measurement_mismatch_and_the_guest_stopped()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var driver = SevDriver();
        driver.TamperNextLaunch(spec => spec with { Env = new Dictionary<string, string>(spec.Env) { ["LD_PRELOAD"] = "/tmp/evil.so" } });
        var created = await tenant.CreatePodAsync("tampered", confidential: true);

        var failed = await WaitFor(tenant, created.Id(), "FAILED");
        Assert.StartsWith("attestation failed: measurement mismatch", failed.GetProperty("reason").GetString());
        Assert.False(failed.GetProperty("attestation").GetProperty("verified").GetBoolean());
        var vmId = Guid.Parse(failed.Instances()[0].Id());
        await Eventually.Until(() => Task.FromResult(!driver.Running.Contains(vmId)), TimeSpan.FromSeconds(15), "the unattested guest is stopped");
        Assert.DoesNotContain((await app.EventsOf(Guid.Parse(created.Id()))).Select(e => e.Data), e => e is PodReplicaRunning);
    }

    [Fact]
    public async Task a_report_signed_by_a_key_outside_the_chain_leaves_the_pod_failed_and_it_is_never_replaced()
    {
        var tenant = await TenantScope.CreateAsync(app);
        SevDriver().ForgeNextReport(AttestationForgery.ForeignKey);
        var created = await tenant.CreatePodAsync("forged", confidential: true);

        var failed = await WaitFor(tenant, created.Id(), "FAILED");
        Assert.Equal("attestation failed: the report's signature does not verify with the host's certified attestation key",
            failed.GetProperty("reason").GetString());
        await Task.Delay(TimeSpan.FromSeconds(2.5)); // longer than the first back-off of an ordinary pod's failed replica
        var still = await Pod(tenant, created.Id());
        Assert.Equal("FAILED", still.State());
        Assert.DoesNotContain((await app.EventsOf(Guid.Parse(created.Id()))).Select(e => e.Data), e => e is PodReplicaReplaced);
    }
}
