using System.Diagnostics;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Bench;

/// <summary>
/// Real microVMs: boot time through the host runtime's qemu-microvm driver (BootAsync, wall clock: image check,
/// directories, pidfile, QEMU start, guest ready line) beside a bare qemu-system-x86_64 run with the very same arguments
/// (process start to the ready line). The ratio is the figure (target ≤ 1.1). Then microVMs booted and stopped per
/// minute through the driver, one and two at a time.
/// </summary>
public static class BootBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var runs = options.Runs;
        var state = Path.Combine(Path.GetTempPath(), $"kraud-boot-bench-{Guid.NewGuid():N}"[..32]);
        var guest = Path.Combine(RepositoryRoot(), ".kraud", "guest");
        var qemuOptions = new QemuOptions { StateDirectory = state, GuestDirectory = guest, MaxMemoryMiB = 256, MaxCpus = 1, BootTimeoutSeconds = 120 };
        await using var driver = QemuMicroVmDriver.Start(qemuOptions, "bench");
        await driver.ImageAsync(CancellationToken.None);
        // The driver's own choice (probe or configuration); the bare runs below reuse its exact arguments, accelerator included.
        var accelerator = (await driver.AcceleratorAsync(CancellationToken.None))!;

        // One boot to learn the exact command line the driver uses, so that the bare runs use the same.
        var probe = Spec();
        await driver.BootAsync(probe, CancellationToken.None);
        var args = File.ReadAllText($"/proc/{driver.ProcessIdOf(probe.VmId)}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries).ToList();
        await driver.StopAsync(probe.VmId, CancellationToken.None);

        var viaDriver = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            var spec = Spec();
            var clock = Stopwatch.StartNew();
            await driver.BootAsync(spec, CancellationToken.None);
            viaDriver.Add(clock.Elapsed.TotalMilliseconds);
            await driver.StopAsync(spec.VmId, CancellationToken.None);
        }

        var bare = new List<double>();
        for (var i = 0; i < runs; i++) bare.Add(await BareBootAsync(args));

        var perMinute1 = await PerMinuteAsync(driver, parallel: 1, TimeSpan.FromSeconds(60));
        var perMinute2 = await PerMinuteAsync(driver, parallel: 2, TimeSpan.FromSeconds(60));
        try { Directory.Delete(state, recursive: true); } catch (IOException) { }

        viaDriver.Sort();
        bare.Sort();
        Console.WriteLine();
        Console.WriteLine($"Kraud boot benchmark: {runs} boots each, 1 vCPU, 256 MiB, no disk, {Environment.ProcessorCount} cores");
        Console.WriteLine($"Accelerator of every figure below: {accelerator.Name}, because {accelerator.Reason}");
        Console.WriteLine();
        Console.WriteLine("| metric | through the host runtime | bare qemu-system-x86_64 | ratio (target <= 1.1) |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| boot to ready, p50 | {Stats.P(viaDriver, 50):F0} ms | {Stats.P(bare, 50):F0} ms | {Stats.P(viaDriver, 50) / Stats.P(bare, 50):F2} |");
        Console.WriteLine($"| boot to ready, min / max | {viaDriver[0]:F0} / {viaDriver[^1]:F0} ms | {bare[0]:F0} / {bare[^1]:F0} ms | - |");
        Console.WriteLine($"| microVMs booted and stopped per minute, one at a time | {perMinute1:F1} | - | - |");
        Console.WriteLine($"| microVMs booted and stopped per minute, two at a time | {perMinute2:F1} | - | - |");
        Console.WriteLine();
        return 0;
    }

    private static MicroVmSpec Spec() =>
        new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, "busybox", [], new Dictionary<string, string>(), 1, 256, 0, false);

    private static async Task<double> BareBootAsync(IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo(args[0]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in args.Skip(1)) start.ArgumentList.Add(arg.StartsWith("kraud-", StringComparison.Ordinal) ? $"kraud-bare-{Guid.NewGuid():N}" : arg);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // A Process, not CliWrap: the guest's console is read while it boots and the bench writes to its stdin.
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data?.Contains("KRAUD-READY", StringComparison.Ordinal) == true) ready.TrySetResult(); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(120));
        var elapsed = clock.Elapsed.TotalMilliseconds;
        process.Kill();
        await process.WaitForExitAsync();
        return elapsed;
    }

    private static async Task<double> PerMinuteAsync(QemuMicroVmDriver driver, int parallel, TimeSpan window)
    {
        var clock = Stopwatch.StartNew();
        var count = 0;
        await Task.WhenAll(Enumerable.Range(0, parallel).Select(async _ =>
        {
            while (clock.Elapsed < window)
            {
                var spec = Spec();
                await driver.BootAsync(spec, CancellationToken.None);
                await driver.StopAsync(spec.VmId, CancellationToken.None);
                Interlocked.Increment(ref count);
            }
        }));
        return count / clock.Elapsed.TotalMinutes;
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
