using System.Diagnostics;
using Kraud.HostRuntime.Drivers.Qemu;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.Tests.HostRuntime;

/// <summary>How the host runtime ends its long-lived children (QEMU, storage daemons, wireguard-go, registries): gone means gone.</summary>
public sealed class ProcessExitSpecs
{
    private static Process Sleeper()
    {
        var start = new ProcessStartInfo("sleep", "600") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        return Process.Start(start)!;
    }

    [Fact]
    public async Task a_killed_child_and_its_descendants_are_gone_when_the_kill_returns()
    {
        var start = new ProcessStartInfo("sh", ["-c", "sleep 600 & echo $!; wait"]) { UseShellExecute = false, RedirectStandardOutput = true };
        using var shell = Process.Start(start)!;
        var child = int.Parse((await shell.StandardOutput.ReadLineAsync())!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(ProcessExit.IsAlive(child));

        await ProcessExit.KillAsync(shell, "a shell", NullLogger.Instance);

        Assert.True(shell.HasExited);
        Assert.False(ProcessExit.IsAlive(shell.Id), $"the shell is {ProcessExit.StateOf(shell.Id)}");
        Assert.False(ProcessExit.IsAlive(child), $"its sleep is {ProcessExit.StateOf(child)}");
    }

    [Fact]
    public async Task a_child_whose_exit_does_not_come_within_the_limit_fails_the_caller_with_its_pid_and_kernel_state()
    {
        using var sleeper = Sleeper();
        try
        {
            // Stands for a QEMU stuck in I/O after its SIGKILL: alive, and its watcher never hears of an exit.
            var never = new TaskCompletionSource().Task;
            var failure = await Assert.ThrowsAsync<ProcessSurvivedKillException>(() =>
                ProcessExit.WaitAsync(never, sleeper.Id, "a stuck child", NullLogger.Instance, TimeSpan.FromMilliseconds(300)));
            Assert.Contains($"a stuck child (pid {sleeper.Id}) is still alive", failure.Message);
            Assert.Contains("state S", failure.Message);
        }
        finally
        {
            await ProcessExit.KillAsync(sleeper, "the sleeper", NullLogger.Instance);
        }
    }

    [Fact]
    public async Task killing_a_child_that_already_exited_returns_at_once()
    {
        using var done = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await done.WaitForExitAsync();
        await ProcessExit.KillAsync(done, "true", NullLogger.Instance).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("gone", ProcessExit.StateOf(done.Id));
    }
}
