using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>Host runtimes in processes of their own reach the control plane through the same PostgreSQL queues as the in-process fleet.</summary>
[Collection(ProcessFleetCollection.Name)]
public sealed class HostRuntimeProcessSpecs(ProcessFleetApp app)
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..12];

    [Fact]
    public async Task a_standalone_host_runtime_registers_itself_boots_the_pods_placed_on_it_and_stops_them()
    {
        var zone = Unique("solo");
        await using var host = HostProcess.Start(app, Unique("h"), zone);
        await host.WaitUntilRegisteredAsync(app);

        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("remote", zone: zone);
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 60);
        Assert.Equal(host.Id.ToString(), Assert.Single(running.Instances()).GetProperty("hostId").GetString());

        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id(), "STOPPED", seconds: 60);
    }

    [Fact]
    public async Task when_a_host_process_is_killed_its_pods_run_on_the_other_host_and_its_confidential_pod_fails()
    {
        var zone = Unique("pair");
        await using var first = HostProcess.Start(app, Unique("sev"), zone, sevSnp: true);
        await first.WaitUntilRegisteredAsync(app);
        var tenant = await TenantScope.CreateAsync(app);
        var ordinary = new[] { await tenant.CreatePodAsync("web", zone: zone), await tenant.CreatePodAsync("api", zone: zone) };
        var enclave = await tenant.CreatePodAsync("enclave", zone: zone, confidential: true);
        foreach (var pod in ordinary.Append(enclave))
        {
            var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 60);
            Assert.Equal(first.Id.ToString(), running.Instances()[0].GetProperty("hostId").GetString());
        }

        await using var second = HostProcess.Start(app, Unique("std"), zone);
        await second.WaitUntilRegisteredAsync(app);
        await first.KillAsync();
        var killedAt = DateTime.UtcNow;

        foreach (var pod in ordinary)
        {
            var moved = await tenant.WaitForPodAsync(pod.Id(),
                p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("hostId").GetString() == second.Id.ToString()),
                TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 30), "the pod runs on the surviving host");
            Assert.Single(moved.Instances());
        }
        var recovery = DateTime.UtcNow - killedAt;
        // Heartbeat window plus boot time. The surviving process boots its first microVM here, so Wolverine compiles
        // that handler now (seconds on 2 cores, more while other tests run): hence the generous margin.
        Assert.True(recovery < TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 30), $"recovery took {recovery.TotalSeconds:F1} s");

        var failed = await tenant.WaitForPodAsync(enclave.Id(), "FAILED", seconds: 30);
        Assert.Contains("not rescheduled", failed.GetProperty("reason").GetString());
        Assert.Equal("FAILED", await app.HostStateAsync(first.Id.ToString()));
    }
}
