using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;

namespace Kraud.Tests.Domain;

public class SimulatedDriverSpecs
{
    private static MicroVmSpec Spec(string image = "nginx") =>
        new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, image, [], new Dictionary<string, string>(), 1, 128, 0, false);

    private static SimulatedDriver Driver(int delayMs = 0) => new(new SimulatedDriverOptions { BootDelay = TimeSpan.FromMilliseconds(delayMs) }, TimeProvider.System);

    [Fact]
    public async Task booting_the_same_microvm_twice_leaves_one_microvm()
    {
        var driver = Driver();
        var spec = Spec();
        var first = await driver.BootAsync(spec, CancellationToken.None);
        var second = await driver.BootAsync(spec, CancellationToken.None);
        Assert.False(first.AlreadyRunning);
        Assert.True(second.AlreadyRunning);
        Assert.Equal([spec.VmId], driver.Running);
    }

    [Fact]
    public async Task concurrent_duplicate_boots_leave_one_microvm()
    {
        var driver = Driver(delayMs: 20);
        var spec = Spec();
        var results = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => driver.BootAsync(spec, CancellationToken.None)));
        Assert.Single(results, r => !r.AlreadyRunning);
        Assert.Single(driver.Running);
    }

    [Fact]
    public async Task the_boot_time_is_measured()
    {
        var result = await Driver(delayMs: 50).BootAsync(Spec(), CancellationToken.None);
        Assert.InRange(result.BootMs, 45, 5000);
    }

    [Fact]
    public async Task injected_faults_fail_boots_with_their_reason()
    {
        var driver = Driver();
        driver.FailNextBoots(1, "disk full");
        Assert.Equal("disk full", (await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(Spec(), CancellationToken.None))).Message);
        await driver.BootAsync(Spec(), CancellationToken.None);
        driver.FailImage("bad:1", "manifest unknown");
        await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(Spec("bad:1"), CancellationToken.None));
        Assert.Single(driver.Running);
    }

    [Fact]
    public async Task stopping_reports_whether_the_microvm_was_running()
    {
        var driver = Driver();
        var spec = Spec();
        await driver.BootAsync(spec, CancellationToken.None);
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
        Assert.False(await driver.StopAsync(spec.VmId, CancellationToken.None));
        Assert.Empty(driver.Running);
    }

    [Fact]
    public async Task a_boot_delivered_again_after_its_microvm_ended_starts_nothing()
    {
        var driver = Driver();
        var exited = Spec();
        var stopped = Spec();
        await driver.BootAsync(exited, CancellationToken.None);
        await driver.BootAsync(stopped, CancellationToken.None);
        Assert.True(driver.ExitWorkload(exited.VmId, 0));
        await driver.StopAsync(stopped.VmId, CancellationToken.None);

        foreach (var spec in new[] { exited, stopped })
            Assert.Contains("already ran on this host and ended",
                (await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(spec, CancellationToken.None))).Message);
        Assert.Empty(driver.Running);
    }

    [Fact]
    public async Task a_microvm_that_vanished_unnoticed_is_booted_again_when_asked()
    {
        var driver = Driver();
        var spec = Spec();
        await driver.BootAsync(spec, CancellationToken.None);
        Assert.True(driver.Vanish(spec.VmId));

        Assert.False((await driver.BootAsync(spec, CancellationToken.None)).AlreadyRunning);
        Assert.Equal([spec.VmId], driver.Running);
    }

    [Fact]
    public async Task a_host_that_lost_its_power_boots_what_it_is_asked_to_again()
    {
        var driver = Driver();
        var spec = Spec();
        await driver.BootAsync(spec, CancellationToken.None);
        driver.LoseAll();

        Assert.False((await driver.BootAsync(spec, CancellationToken.None)).AlreadyRunning);
        Assert.Equal([spec.VmId], driver.Running);
    }
}
