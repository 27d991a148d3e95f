using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Kraud.Tests.HostRuntime;

/// <summary>The qemu-microvm driver boots real guests: no database, one QEMU at a time.</summary>
[Collection(QemuCollection.Name)]
public sealed class QemuMicroVmDriverSpecs(QemuFixture qemu, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<QemuMicroVmDriver> _drivers = [];
    private readonly List<string> _scratch = [];

    private QemuMicroVmDriver Driver(string host = "qemu-test", string? qemuImg = null)
    {
        var options = qemu.Options();
        if (qemuImg is not null) options.QemuImg = qemuImg;
        var driver = QemuMicroVmDriver.Start(options, host);
        _drivers.Add(driver);
        return driver;
    }

    /// <summary>
    /// A qemu-img that answers the first <paramref name="failures"/> calls with <paramref name="error"/>, as the real one
    /// does when its calibration misreads the cpu clock, and then runs the real one. Its calls are counted in the returned file.
    /// </summary>
    private (string Script, string Calls) FlakyQemuImg(int failures, string error)
    {
        var directory = Directory.CreateTempSubdirectory("kraud-qemu-img-").FullName;
        _scratch.Add(directory);
        var (script, calls) = (Path.Combine(directory, "qemu-img"), Path.Combine(directory, "calls"));
        File.WriteAllText(script, $$"""
            #!/bin/sh
            n=$(( $(cat '{{calls}}' 2>/dev/null || echo 0) + 1 )); echo $n > '{{calls}}'
            if [ $n -le {{failures}} ]; then echo "qemu-img: image: {{error}}" >&2; exit 1; fi
            exec '{{QemuFixture.OnPath("qemu-img")}}' "$@"
            """);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return (script, calls);
    }

    /// <summary>
    /// A qemu-system-x86_64 that behaves as <paramref name="underKvm"/> says when asked for <c>-accel kvm</c> (or always, with
    /// <paramref name="always"/>), and otherwise runs the real one. Every call's arguments are appended to the returned file.
    /// </summary>
    private (string Script, string Calls) FakeQemu(string underKvm, bool always = false)
    {
        var directory = Directory.CreateTempSubdirectory("kraud-qemu-system-").FullName;
        _scratch.Add(directory);
        var (script, calls) = (Path.Combine(directory, "qemu-system-x86_64"), Path.Combine(directory, "calls"));
        var trigger = always ? "*" : "*' -accel kvm '*";
        File.WriteAllText(script, $$"""
            #!/bin/sh
            echo "$*" >> '{{calls}}'
            case " $* " in {{trigger}}) {{underKvm}};; esac
            exec '{{QemuFixture.OnPath("qemu-system-x86_64")}}' "$@"
            """);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return (script, calls);
    }

    /// <summary>As on machines whose /dev/kvm opens but runs no guest: the firmware's first line, then nothing, for ever.</summary>
    private const string HangsAfterTheFirstLine = "echo 'Probing EDD (edd=off to disable)... ok'; exec sleep 600";

    /// <summary>A KVM that works, played by TCG: the same arguments with the accelerator and cpu model it can run.</summary>
    private static readonly string WorkingKvm =
        $"for a in \"$@\"; do shift; case \"$a\" in kvm) set -- \"$@\" tcg;; host) set -- \"$@\" max;; *) set -- \"$@\" \"$a\";; esac; done; " +
        $"exec '{QemuFixture.OnPath("qemu-system-x86_64")}' \"$@\"";

    private QemuMicroVmDriver Driver(string qemuSystem, Action<QemuOptions> configure)
    {
        var options = qemu.Options();
        options.QemuSystem = qemuSystem;
        configure(options);
        var driver = QemuMicroVmDriver.Start(options, $"qemu-accel-{Guid.NewGuid():N}"[..20]);
        _drivers.Add(driver);
        return driver;
    }

    /// <summary>Stands in for a /dev/kvm that exists, whatever this machine has.</summary>
    private string KvmDevice()
    {
        var device = Path.Combine(Directory.CreateTempSubdirectory("kraud-kvm-").FullName, "kvm");
        _scratch.Add(Path.GetDirectoryName(device)!);
        File.WriteAllText(device, "");
        return device;
    }

    private static int KvmCalls(string calls) =>
        File.Exists(calls) ? File.ReadAllLines(calls).Count(l => $" {l} ".Contains(" -accel kvm ", StringComparison.Ordinal)) : 0;

    [Fact]
    public async Task where_a_guest_under_kvm_never_comes_up_the_probe_chooses_tcg_once_and_guests_boot_under_it()
    {
        var (fake, calls) = FakeQemu(HangsAfterTheFirstLine);
        var kvm = KvmDevice();
        var driver = Driver(fake, o => (o.KvmDevice, o.KvmProbeSeconds) = (kvm, 3));

        var accelerator = await driver.AcceleratorAsync(CancellationToken.None);

        Assert.Equal("TCG", accelerator!.Name);
        Assert.Contains("was not ready within 3 s", accelerator.Reason);
        Assert.Contains("Probing EDD", accelerator.Reason);
        var spec = QemuFixture.Spec();
        await driver.BootAsync(spec, CancellationToken.None);
        Assert.Contains("-accel tcg", File.ReadAllLines(calls).Last());
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
        // Decided once: the boot did not probe again, and neither does a second driver of this runtime.
        Assert.Equal(accelerator, await Driver(fake, o => (o.KvmDevice, o.KvmProbeSeconds) = (kvm, 3)).AcceleratorAsync(CancellationToken.None));
        Assert.Equal(1, KvmCalls(calls));
    }

    [Fact]
    public async Task where_a_guest_boots_under_kvm_the_probe_chooses_kvm()
    {
        var (fake, calls) = FakeQemu(WorkingKvm);
        var driver = Driver(fake, o => (o.KvmDevice, o.KvmProbeSeconds) = (KvmDevice(), 90));

        var accelerator = await driver.AcceleratorAsync(CancellationToken.None);

        Assert.Equal("KVM", accelerator!.Name);
        Assert.Contains("booted under KVM", accelerator.Reason);
        var spec = QemuFixture.Spec();
        await driver.BootAsync(spec, CancellationToken.None);
        var call = File.ReadAllLines(calls).Last();
        Assert.Contains("-accel kvm", call);
        // Under KVM the guest boots the bzImage (its decompressor places the kernel at random) and runs its crypto self-tests.
        Assert.Contains($"-kernel {(await driver.ImageAsync(CancellationToken.None)).Kernel} ", call);
        Assert.DoesNotContain("cryptomgr.notests", call);
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task a_tcg_guest_boots_the_uncompressed_kernel_at_its_pvh_entry_and_still_prints_its_first_line_at_once()
    {
        var (recording, calls) = FakeQemu(":");
        var driver = Driver(recording, o => o.Kvm = false);
        var image = await driver.ImageAsync(CancellationToken.None);
        var bzImage = await File.ReadAllBytesAsync(image.Kernel);

        Assert.NotNull(image.PvhKernel);
        var vmlinux = await File.ReadAllBytesAsync(image.PvhKernel);
        Assert.True(PvhKernel.HasPvhEntry(vmlinux));
        Assert.Equal(vmlinux, PvhKernel.Extract(bzImage, "# CONFIG_X86_64=y\nCONFIG_PVH=y\n"));
        Assert.Null(PvhKernel.Extract(bzImage, "# CONFIG_PVH is not set\n"));
        Assert.False(PvhKernel.HasPvhEntry(bzImage));

        var spec = QemuFixture.Spec();
        await driver.BootAsync(spec, CancellationToken.None);

        var call = File.ReadAllLines(calls).Last();
        Assert.Contains($"-kernel {image.PvhKernel} ", call);
        Assert.Contains("cryptomgr.notests", call);
        // No boot stub prints "Probing EDD" any more: the kernel's own first line, through earlyprintk, is the guest's first.
        var console = await File.ReadAllLinesAsync(driver.ConsoleLogOf(spec.VmId));
        Assert.Contains("Linux version", console[1]);
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task with_fast_boot_under_tcg_off_a_tcg_guest_boots_the_bzimage_with_its_crypto_self_tests()
    {
        var (recording, calls) = FakeQemu(":");
        var driver = Driver(recording, o => (o.Kvm, o.FastBootUnderTcg) = (false, false));
        var spec = QemuFixture.Spec();

        await driver.BootAsync(spec, CancellationToken.None);

        var call = File.ReadAllLines(calls).Last();
        Assert.Contains($"-kernel {(await driver.ImageAsync(CancellationToken.None)).Kernel} ", call);
        Assert.DoesNotContain("cryptomgr.notests", call);
        Assert.DoesNotContain("earlyprintk", call);
        Assert.Contains("Probing EDD", (await File.ReadAllLinesAsync(driver.ConsoleLogOf(spec.VmId)))[1]);
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task without_a_kvm_device_the_probe_chooses_tcg_without_trying_kvm()
    {
        var (fake, calls) = FakeQemu(HangsAfterTheFirstLine);
        var driver = Driver(fake, o => o.KvmDevice = "/nonexistent/kvm");

        var accelerator = await driver.AcceleratorAsync(CancellationToken.None);

        Assert.Equal("TCG", accelerator!.Name);
        Assert.Contains("/nonexistent/kvm does not exist", accelerator.Reason);
        Assert.Equal(0, KvmCalls(calls));
    }

    [Fact]
    public async Task kvm_false_forces_tcg_without_a_probe()
    {
        var (fake, calls) = FakeQemu(WorkingKvm);
        var driver = Driver(fake, o => (o.Kvm, o.KvmDevice) = (false, KvmDevice()));

        var spec = QemuFixture.Spec();
        await driver.BootAsync(spec, CancellationToken.None);

        var accelerator = await driver.AcceleratorAsync(CancellationToken.None);
        Assert.Equal(("TCG", true), (accelerator!.Name, accelerator.Forced));
        Assert.Equal(0, KvmCalls(calls));
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task kvm_true_forces_kvm_and_a_boot_that_then_hangs_says_kvm_does_not_run_guests_here()
    {
        var (fake, calls) = FakeQemu(HangsAfterTheFirstLine);
        var driver = Driver(fake, o => (o.Kvm, o.KvmDevice, o.BootTimeoutSeconds) = (true, "/nonexistent/kvm", 4));

        var failure = await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(QemuFixture.Spec(), CancellationToken.None));

        Assert.Contains("did not report ready within 4 s under KVM", failure.Message);
        Assert.Contains("KVM does not run guests on this host", failure.Message);
        Assert.Contains("Probing EDD", failure.Message);
        Assert.Equal(1, KvmCalls(calls));
        Assert.Empty(driver.Running);
    }

    [Fact]
    public async Task a_guest_that_prints_nothing_fails_at_the_first_output_deadline_with_the_accelerator_in_the_reason()
    {
        var (fake, _) = FakeQemu("echo 'qemu: nothing to see' >&2; exec sleep 600", always: true);
        var driver = Driver(fake, o => (o.Kvm, o.FirstOutputSeconds, o.BootTimeoutSeconds) = (false, 2, 90));
        // The guest image is looked up first (apt-cache, slow on a loaded machine): the clock is for the boot alone.
        await driver.ImageAsync(CancellationToken.None);

        var clock = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(QemuFixture.Spec(), CancellationToken.None));

        Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 30);
        Assert.Contains("printed nothing on its console within 2 s under TCG (forced by Fleet:Qemu:Kvm = false)", failure.Message);
        Assert.Contains("nothing to see", failure.Message);
        Assert.Empty(driver.Running);
    }

    [Fact]
    public async Task an_encrypted_disk_is_made_again_when_qemu_img_misreads_the_cpu_clock_but_not_on_other_errors()
    {
        var (flaky, calls) = FlakyQemuImg(failures: 2, "Unable to get accurate CPU usage");
        var driver = Driver("qemu-calibration", flaky);
        var spec = QemuFixture.Spec(ephemeralGiB: 1, "sleep", "600");
        await driver.BootAsync(spec, CancellationToken.None);
        // Two injected failures, then the real qemu-img, which can itself misread the clock on a busy machine (CI saw 3 in a row).
        Assert.InRange(int.Parse((await File.ReadAllTextAsync(calls)).Trim(), CultureInfo.InvariantCulture), 3, LuksImage.MaxAttempts);
        Assert.True(File.Exists(driver.EphemeralDiskOf(spec.VmId)));
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));

        var (broken, brokenCalls) = FlakyQemuImg(failures: 5, "No space left on device");
        var refused = await Assert.ThrowsAsync<MicroVmBootException>(() => Driver("qemu-no-space", broken).BootAsync(QemuFixture.Spec(ephemeralGiB: 1), CancellationToken.None));
        Assert.Contains("No space left on device", refused.Message);
        Assert.Equal("1", (await File.ReadAllTextAsync(brokenCalls)).Trim());
    }

    [Fact]
    public async Task a_real_microvm_boots_once_per_vm_id_reports_its_measured_boot_time_and_leaves_no_qemu_after_stop()
    {
        var driver = Driver();
        var spec = QemuFixture.Spec();

        var boot = await driver.BootAsync(spec, CancellationToken.None);
        var again = await driver.BootAsync(spec, CancellationToken.None);

        output.WriteLine($"boot through the driver: {boot.BootMs:F0} ms (QEMU start to KRAUD-READY)");
        Assert.False(boot.AlreadyRunning);
        // Under TCG a guest needs seconds; far less would mean nothing was booted.
        Assert.InRange(boot.BootMs, 300, 90_000);
        Assert.True(again.AlreadyRunning);
        Assert.Equal([spec.VmId], driver.Running);
        Assert.Single(QemuFixture.QemuProcessesOf(spec.VmId));
        Assert.Matches(@"KRAUD-READY uptime=\d+\.\d+", await File.ReadAllTextAsync(driver.ConsoleLogOf(spec.VmId)));

        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));

        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
        Assert.Empty(driver.Running);
        Assert.False(Directory.Exists(Path.Combine(driver.VmsDirectory, spec.VmId.ToString())));
        // The guest powered off when asked, rather than being killed at the deadline.
        Assert.Contains("KRAUD-HALT", await File.ReadAllTextAsync(driver.ConsoleLogOf(spec.VmId)));
        Assert.False(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task killing_the_qemu_process_is_reported_as_a_crash_with_the_console_tail()
    {
        var driver = Driver();
        var spec = QemuFixture.Spec();
        var crashed = new TaskCompletionSource<MicroVmCrash>(TaskCreationOptions.RunContinuationsAsynchronously);
        driver.Crashed += c => crashed.TrySetResult(c);
        await driver.BootAsync(spec, CancellationToken.None);

        using (var process = Process.GetProcessById(driver.ProcessIdOf(spec.VmId)!.Value)) process.Kill();
        var crash = await crashed.Task.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(spec.VmId, crash.VmId);
        Assert.Equal(spec.PodId, crash.PodId);
        Assert.Contains("exited unexpectedly", crash.Reason);
        Assert.Contains("KRAUD-READY", crash.Reason);
        Assert.Empty(driver.Running);
        Assert.False(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task the_ephemeral_disk_is_encrypted_by_qemu_and_its_image_and_key_are_gone_after_stop()
    {
        var driver = Driver();
        var marker = $"KRAUD-MARKER-{Guid.NewGuid():N}";
        var spec = QemuFixture.Spec(ephemeralGiB: 1, "sh", "-c",
            $"printf '%s' '{marker}' | dd of=/dev/vda conv=fsync 2>/dev/null && sync && echo marker-on-disk && exec sleep 600");
        await driver.BootAsync(spec, CancellationToken.None);
        await QemuFixture.WaitForWorkloadLogAsync(driver, spec.VmId, "marker-on-disk");

        var image = driver.EphemeralDiskOf(spec.VmId)!;
        var key = driver.EphemeralKeyOf(spec.VmId)!;
        var pid = driver.ProcessIdOf(spec.VmId)!.Value;
        var base64Key = Convert.ToBase64String(key);
        Assert.DoesNotContain(base64Key, await File.ReadAllTextAsync($"/proc/{pid}/cmdline"));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(image)!, "*.key"));
        Assert.DoesNotContain(marker, Encoding.ASCII.GetString(await File.ReadAllBytesAsync(image)));
        Assert.Equal(marker, await QemuFixture.DecryptedPrefixAsync(image, base64Key, marker.Length));

        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));

        Assert.False(File.Exists(image));
        Assert.Null(driver.EphemeralKeyOf(spec.VmId));
        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
    }

    [Fact]
    public async Task a_restarted_host_runtime_kills_the_qemu_processes_its_predecessor_left_behind()
    {
        var crashedRuntime = Driver("qemu-orphans");
        var spec = QemuFixture.Spec();
        await crashedRuntime.BootAsync(spec, CancellationToken.None);
        Assert.Single(QemuFixture.QemuProcessesOf(spec.VmId));

        // The first runtime never stops its VMs, as if it had died: the next one for the same host finds them by pidfile.
        var restarted = Driver("qemu-orphans");

        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
        Assert.Empty(restarted.Running);
        Assert.False(Directory.Exists(Path.Combine(restarted.VmsDirectory, spec.VmId.ToString())));
    }

    [Fact]
    public async Task a_guest_that_cannot_come_up_fails_its_boot_with_the_reason()
    {
        var options = qemu.Options();
        options.QemuSystem = "/nonexistent/qemu-system-x86_64";
        var driver = QemuMicroVmDriver.Start(options, "qemu-missing");
        _drivers.Add(driver);

        var failure = await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(QemuFixture.Spec(), CancellationToken.None));

        Assert.Contains("not installed", failure.Message);
        Assert.Empty(driver.Running);
    }

    [Fact]
    public async Task a_block_volume_is_a_luks_disk_qemu_opens_with_the_volume_key_and_its_data_outlives_the_microvm()
    {
        var driver = Driver();
        var volumeId = Guid.NewGuid();
        var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var marker = $"KRAUD-VOLUME-{Guid.NewGuid():N}";
        var volume = new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, new WrappedKey(Guid.NewGuid(), "kek-test", "unused by the driver"), []);
        // Ephemeral disk first (/dev/vda), the volume second (/dev/vdb); /init made a file system on the volume and mounted it at /data.
        var writer = QemuFixture.Spec(ephemeralGiB: 1, "sh", "-c",
                $"printf '%s' '{marker}' | dd of=/dev/vdb conv=fsync 2>/dev/null && echo 'file-{marker}' > /data/marker.txt && sync && echo written && exec sleep 600")
            with
        { Volumes = [volume] };
        await driver.BootAsync(writer, new Dictionary<Guid, byte[]> { [volumeId] = key.ToArray() }, CancellationToken.None);
        await QemuFixture.WaitForWorkloadLogAsync(driver, writer.VmId, "written");
        var image = driver.VolumeImageOf(volumeId);
        var base64Key = Convert.ToBase64String(key);
        Assert.DoesNotContain(base64Key, await File.ReadAllTextAsync($"/proc/{driver.ProcessIdOf(writer.VmId)!.Value}/cmdline"));
        Assert.DoesNotContain(marker, Encoding.ASCII.GetString(await File.ReadAllBytesAsync(image)));
        Assert.Equal(marker, await QemuFixture.DecryptedPrefixAsync(image, base64Key, marker.Length));
        Assert.True(await driver.StopAsync(writer.VmId, CancellationToken.None));
        Assert.True(File.Exists(image));

        // Another microVM mounting the volume (only) reads what the first one wrote.
        var reader = QemuFixture.Spec(0, "sh", "-c", $"echo found-$(dd if=/dev/vda bs={marker.Length} count=1 2>/dev/null) $(cat /data/marker.txt); exec sleep 600")
            with
        { Volumes = [volume] };
        await driver.BootAsync(reader, new Dictionary<Guid, byte[]> { [volumeId] = key.ToArray() }, CancellationToken.None);
        await QemuFixture.WaitForWorkloadLogAsync(driver, reader.VmId, $"found-{marker} file-{marker}");
        Assert.True(await driver.StopAsync(reader.VmId, CancellationToken.None));

        // Without the right key QEMU cannot open it, and the microVM does not boot.
        var intruder = QemuFixture.Spec() with { Volumes = [volume] };
        await Assert.ThrowsAsync<MicroVmBootException>(() =>
            driver.BootAsync(intruder, new Dictionary<Guid, byte[]> { [volumeId] = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32) }, CancellationToken.None));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var driver in _drivers) await driver.DisposeAsync();
        foreach (var directory in _scratch) StateDirectories.Remove(directory);
    }
}
