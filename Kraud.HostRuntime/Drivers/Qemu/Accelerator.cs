using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// Chooses the accelerator once per host runtime. A <c>/dev/kvm</c> that opens proves nothing: machines of this kind have
/// one whose guests never get past the firmware ("Probing EDD", then silence), or whose QEMU aborts setting an MSR. So
/// unless the configuration forces a choice, one probe guest (the real guest image) is booted under KVM with a short
/// deadline, and KVM is used only when it reported ready in time; otherwise TCG.
/// </summary>
public static class AcceleratorProbe
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<Accelerator>>> Decided = new();

    /// <summary>
    /// The accelerator for guests of this QEMU, probed on the first call and remembered for the process's life (the
    /// answer depends on the QEMU binary, the kernel and the machine, none of which changes under a running host runtime).
    /// </summary>
    public static Task<Accelerator> ChooseAsync(QemuOptions options, string qemu, GuestImage image, ILogger logger)
    {
        var key = string.Join('|', qemu, image.Kernel, options.Kvm?.ToString() ?? "probe", options.KvmDevice,
            options.KvmProbeSeconds.ToString(CultureInfo.InvariantCulture));
        return Decided.GetOrAdd(key, _ => new Lazy<Task<Accelerator>>(async () =>
        {
            var choice = await DecideAsync(options, qemu, image, logger);
            logger.LogInformation("QEMU guests on this host run under {Accelerator}: {Reason}", choice.Name, choice.Reason);
            return choice;
        })).Value;
    }

    private static async Task<Accelerator> DecideAsync(QemuOptions options, string qemu, GuestImage image, ILogger logger)
    {
        switch (options.Kvm)
        {
            case true: return new Accelerator(true, "forced by Fleet:Qemu:Kvm = true", Forced: true);
            case false: return new Accelerator(false, "forced by Fleet:Qemu:Kvm = false", Forced: true);
        }
        if (!File.Exists(options.KvmDevice)) return new Accelerator(false, $"{options.KvmDevice} does not exist");
        var failure = await BootUnderKvmAsync(qemu, image, options, TimeSpan.FromSeconds(options.KvmProbeSeconds), logger);
        return failure is null
            ? new Accelerator(true, $"a probe guest booted under KVM within {options.KvmProbeSeconds} s")
            : new Accelerator(false, $"{options.KvmDevice} exists, but a probe guest under KVM {failure}");
    }

    /// <summary>Null when the guest reported ready before the deadline; otherwise what went wrong, as the tail of a sentence.</summary>
    private static async Task<string?> BootUnderKvmAsync(string qemu, GuestImage image, QemuOptions options, TimeSpan deadline, ILogger logger)
    {
        // The TSC frequency too, as every boot gets it: a slow accelerator must not fail the probe by hanging in the
        // kernel's TSC calibration.
        var append = QemuMicroVmDriver.GuestTscKhz(options) is { } tscKhz
            ? $"{QemuMicroVmDriver.GuestCommandLine} tsc_early_khz={tscKhz}"
            : QemuMicroVmDriver.GuestCommandLine;
        var start = new ProcessStartInfo(qemu)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "-name", $"kraud-kvm-probe-{Environment.ProcessId}", "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "128",
                     "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
                     "-kernel", image.Kernel, "-initrd", image.Initrd, "-append", append,
                 })
            start.ArgumentList.Add(arg);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lastLines = new ConcurrentQueue<string>();
        // A Process, not CliWrap: the probe guest is read until it says it is ready, then killed.
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Seen(e.Data);
        process.ErrorDataReceived += (_, e) => Seen(e.Data);
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return $"could not start: {e.Message}";
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(ready.Task, exited, Task.Delay(deadline));
        // A probe QEMU stuck in the kernel (the very fault the probe looks for) must be gone before a guest is booted, or
        // the machine runs a hidden guest; a survivor fails the host runtime's start loudly.
        await ProcessExit.KillAsync(process, "the KVM probe guest", logger, exited, TimeSpan.FromSeconds(options.KillTimeoutSeconds));
        var said = lastLines.IsEmpty ? "" : $" (last words: {string.Join(" | ", lastLines.TakeLast(3))})";
        if (first == ready.Task) return null;
        return first == exited
            ? $"exited with code {process.ExitCode} before it was ready{said}"
            : $"was not ready within {deadline.TotalSeconds:F0} s{said}";

        void Seen(string? line)
        {
            if (string.IsNullOrWhiteSpace(line)) return;
            if (line.Contains("KRAUD-READY", StringComparison.Ordinal)) ready.TrySetResult();
            lastLines.Enqueue(line.Trim() is { Length: > 120 } longLine ? longLine[..120] + "…" : line.Trim());
            while (lastLines.Count > 3) lastLines.TryDequeue(out _);
        }
    }
}
