using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Images;
using Kraud.HostRuntime.Network;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// Real microVMs: one <c>qemu-system-x86_64 -M microvm</c> process per VM (virtio-mmio devices found through ACPI, no
/// PCI), KVM when the host has it and TCG otherwise. A VM is up when its guest prints KRAUD-READY on the serial
/// console; the boot time is measured from the QEMU process start to that line. Each VM has a directory under
/// hosts/&lt;host&gt;/vms/&lt;vm id&gt; with its pidfile and its encrypted ephemeral disk; the console log is kept under
/// hosts/&lt;host&gt;/console/&lt;vm id&gt;.log. A QEMU that exits without being asked is reported through <see cref="Crashed"/>.
/// </summary>
public sealed partial class QemuMicroVmDriver : IMicroVmDriver, IAsyncDisposable
{
    public const string DriverName = "qemu-microvm";

    /// <summary>The cloud kernel and this initramfs need about this much to boot at all.</summary>
    private const int MinMemoryMiB = 128;

    private const int ConsoleTailLines = 25;

    internal const string GuestCommandLine = "console=ttyS0 loglevel=4 panic=-1 rdinit=/init";

    /// <summary>x86 kernels take at most 2048 bytes of command line, terminator included.</summary>
    private const int MaxKernelCommandLine = 2000;

    private readonly QemuOptions _options;
    private readonly GuestImageBuilder _images;
    private readonly ILogger _logger;
    private readonly WorkloadServices? _workloads;
    private readonly ConcurrentDictionary<Guid, Vm> _vms = new();
    private readonly EndedMicroVms _ended = new();
    private readonly SemaphoreSlim _imageGate = new(1, 1);
    private GuestImage? _image;

    private readonly HostNamespace? _network;

    private QemuMicroVmDriver(QemuOptions options, string hostName, ILogger? logger, WorkloadServices? workloads, HostNamespace? network)
    {
        _options = options;
        _network = network;
        _logger = logger ?? NullLogger.Instance;
        _workloads = workloads;
        _images = new GuestImageBuilder(options.ResolvedGuestDirectory, options.KernelPackage, options.Busybox);
        var hostDirectory = Path.Combine(options.ResolvedStateDirectory, "hosts", hostName);
        VmsDirectory = Path.Combine(hostDirectory, "vms");
        VolumesDirectory = Path.Combine(options.ResolvedStateDirectory, "volumes");
        ConsoleDirectory = Path.Combine(hostDirectory, "console");
        LogsDirectory = Path.Combine(hostDirectory, "logs");
    }

    /// <summary>
    /// The driver of one host. It first kills the QEMU processes a previous run of this host's runtime left behind (their
    /// pidfiles are in this host's state directory): after a crash of the host runtime nobody owns them any more, and
    /// the keys of their disks died with it.
    /// </summary>
    /// <param name="workloads">Image cache, sealing key and log sink; without them the driver runs only pods whose image nobody resolved.</param>
    /// <param name="network">The host's namespace when its network is real: each guest then gets a tap there and its QEMU runs inside.</param>
    public static QemuMicroVmDriver Start(QemuOptions options, string hostName, ILogger? logger = null, WorkloadServices? workloads = null,
        HostNamespace? network = null)
    {
        var driver = new QemuMicroVmDriver(options, hostName, logger, workloads, network);
        driver.KillLeftovers();
        return driver;
    }

    public string Name => DriverName;

    public string VmsDirectory { get; }

    public QemuOptions Options => _options;

    /// <summary>The host's namespace when its network is real (its QEMUs and volume work run inside); null otherwise.</summary>
    public HostNamespace? Network => _network;

    /// <summary>This host's state: its VMs, consoles and the scratch space of volume work.</summary>
    public string HostDirectory => Path.GetDirectoryName(VmsDirectory)!;

    /// <summary>
    /// Fills a new replica of a volume the running microVM has attached, in its own QEMU while the guest keeps writing, and
    /// takes it into the guest's quorum (see <see cref="QuorumVolume.ResyncAsync"/>).
    /// </summary>
    public async Task<ResyncOutcome> ResyncAsync(ResyncVolumeReplica command, Func<CopyProgress, Task> progress, CancellationToken ct)
    {
        if (command.VmId is not { } vmId || !_vms.TryGetValue(vmId, out var vm) || !vm.IsRunning)
            throw new ResyncException($"microVM {command.VmId} does not run here");
        if (!vm.Quorums.TryGetValue(command.VolumeId, out var quorum)) throw new ResyncException($"microVM {vmId} has no quorum for volume {command.VolumeId}");
        vm.Qmp ??= await QmpClient.ConnectAsync(vm.QmpSocket, TimeSpan.FromSeconds(10), ct);
        return await quorum.ResyncAsync(vm.Qmp, command, vm.Directory, _options, progress, ct);
    }

    /// <summary>Scrubs a volume the running microVM has attached, beside its guest (see <see cref="QuorumVolume.ScrubAsync"/>).</summary>
    public async Task<ScrubFindings> ScrubAsync(ScrubVolumeReplicas command, CancellationToken ct)
    {
        if (command.VmId is not { } vmId || !_vms.TryGetValue(vmId, out var vm) || !vm.IsRunning)
            throw new ResyncException($"microVM {command.VmId} does not run here");
        if (!vm.Quorums.TryGetValue(command.VolumeId, out var quorum)) throw new ResyncException($"microVM {vmId} has no quorum for volume {command.VolumeId}");
        vm.Qmp ??= await QmpClient.ConnectAsync(vm.QmpSocket, TimeSpan.FromSeconds(10), ct);
        return await quorum.ScrubAsync(vm.Qmp, command, _options.ScrubBytesPerSecond, ct);
    }

    /// <summary>
    /// A running guest's quorum reported a replica bad (QUORUM_REPORT_BAD: a read, write or flush failed on it while the
    /// others served it); the driver took it out of that quorum where the vote threshold allowed. Raised on the watcher's thread.
    /// </summary>
    public event Action<QuorumReport>? ReplicaReportedBad;

    /// <summary>A guest stopped on a write a replica failed went on again (the replica is out): how long it was stopped.</summary>
    public event Action<FailedWritePause>? GuestWentOnAfterFailedWrite;

    /// <summary>
    /// Listens to the events of a guest's QEMU on a monitor of their own (commands go to the other one, which reads events
    /// only while a command runs), connected before the guest first runs so that none is missed: a quorum child that failed
    /// an I/O is reported and taken out of the quorum, and a guest that stopped on a write a child failed goes on once that
    /// child is out (see <see cref="QuorumVolume"/>). Ends when QEMU does.
    /// </summary>
    private async Task WatchQuorumsAsync(Vm vm, QmpClient events)
    {
        try
        {
            await using (events)
                while (true)
                {
                    var next = await events.NextEventAsync(CancellationToken.None);
                    var data = next.TryGetProperty("data", out var d) ? d : default;
                    switch (next.GetProperty("event").GetString())
                    {
                        case "QUORUM_REPORT_BAD":
                            OnReportBad(vm, data);
                            break;
                        case "BLOCK_IO_ERROR" when data.GetProperty("action").GetString() == "stop":
                            var node = data.TryGetProperty("node-name", out var n) ? n.GetString() : null;
                            var at = next.TryGetProperty("timestamp", out var t)
                                ? DateTimeOffset.FromUnixTimeSeconds(t.GetProperty("seconds").GetInt64()).AddTicks(t.GetProperty("microseconds").GetInt64() * 10)
                                : DateTimeOffset.UtcNow;
                            foreach (var quorum in vm.Quorums.Values.Where(q => q.Luks == node)) _ = ResumeAfterFailedWriteAsync(vm, quorum, at);
                            break;
                    }
                }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or QmpException or ObjectDisposedException or TimeoutException)
        {
            // QEMU is gone: nothing is left to watch.
        }
    }

    private void OnReportBad(Vm vm, System.Text.Json.JsonElement data)
    {
        var node = data.GetProperty("node-name").GetString() ?? "";
        foreach (var (volumeId, quorum) in vm.Quorums)
        {
            if (quorum.HostOfChild(node) is not { } replicaHost) continue;
            quorum.MarkFailed(node);
            var detail = $"{data.GetProperty("type").GetString()} " +
                         (data.TryGetProperty("error", out var error) ? $"failed: {error.GetString()}" : "outvoted by its peers");
            var fault = new ReplicaFault(replicaHost, data.GetProperty("sector-num").GetInt64() * 512, data.GetProperty("sectors-count").GetInt64() * 512, detail);
            _logger.LogWarning("microVM {VmId}: the quorum of volume {VolumeId} reports its replica on {Host} bad: {Detail}", vm.Spec.VmId, volumeId,
                replicaHost, detail);
            ReplicaReportedBad?.Invoke(new QuorumReport(vm.Spec.VmId, volumeId, fault));
            _ = DropReplicaAsync(vm, quorum, replicaHost);
        }
    }

    private async Task DropReplicaAsync(Vm vm, QuorumVolume quorum, Guid replicaHost)
    {
        await quorum.Changes.WaitAsync();
        try
        {
            if (!vm.IsAlive) return;
            vm.Qmp ??= await QmpClient.ConnectAsync(vm.QmpSocket, TimeSpan.FromSeconds(10), CancellationToken.None);
            await quorum.TakeOutAsync(vm.Qmp, replicaHost);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or QmpException or TimeoutException)
        {
            _logger.LogWarning("microVM {VmId}: could not take the replica on {Host} out of its quorum: {Reason}", vm.Spec.VmId, replicaHost, e.Message);
        }
        finally
        {
            quorum.Changes.Release();
        }
    }

    private static async Task<string?> StatusAsync(QmpClient qmp) =>
        (await qmp.ExecuteAsync("query-status", null, CancellationToken.None)).GetProperty("status").GetString();

    /// <summary>
    /// The guest stopped on a write a child of <paramref name="quorum"/> failed: once that child is out, it goes on (QEMU
    /// issues the write again). QEMU raises the event before it stops the guest, so the resume waits for the stop.
    /// </summary>
    /// <param name="failedAt">When QEMU reported the failed write (its event's own clock): the guest's pause is counted from there.</param>
    private async Task ResumeAfterFailedWriteAsync(Vm vm, QuorumVolume quorum, DateTimeOffset failedAt)
    {
        await quorum.Changes.WaitAsync();
        try
        {
            if (!vm.IsAlive) return;
            vm.Qmp ??= await QmpClient.ConnectAsync(vm.QmpSocket, TimeSpan.FromSeconds(10), CancellationToken.None);
            var qmp = vm.Qmp;
            if (!await quorum.ResumeAfterFailedWriteAsync(qmp))
            {
                if (await StatusAsync(qmp) != "running")
                    _logger.LogWarning("microVM {VmId}: stopped on a failed write to volume {VolumeId}, and no replica could be taken out: it stays stopped",
                        vm.Spec.VmId, quorum.Spec.VolumeId);
                return;
            }
            var stopped = Stopwatch.GetTimestamp();
            while (await StatusAsync(qmp) == "running")
            {
                if (Stopwatch.GetElapsedTime(stopped) > TimeSpan.FromSeconds(1)) return; // it went on by other means (a resync's cont)
                await Task.Delay(10);
            }
            await qmp.ExecuteAsync("cont", null, CancellationToken.None);
            var paused = (DateTimeOffset.UtcNow - failedAt).TotalMilliseconds;
            _logger.LogInformation("microVM {VmId}: a write to volume {VolumeId} failed on a replica, which is out of its quorum now; the guest goes on after {PauseMs:F0} ms",
                vm.Spec.VmId, quorum.Spec.VolumeId, paused);
            GuestWentOnAfterFailedWrite?.Invoke(new FailedWritePause(vm.Spec.VmId, quorum.Spec.VolumeId, paused));
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or QmpException or TimeoutException)
        {
            _logger.LogWarning("microVM {VmId}: stopped on a failed write to volume {VolumeId}, and could not go on: {Reason}", vm.Spec.VmId,
                quorum.Spec.VolumeId, e.Message);
        }
        finally
        {
            quorum.Changes.Release();
        }
    }

    public string ConsoleDirectory { get; }

    /// <summary>
    /// Where mounted volumes' encrypted images are. On one machine these files stand in for the network block devices a
    /// volume's storage hosts would serve; what is real is that only the volume's own data key opens them, and that QEMU
    /// gets it the way it gets the ephemeral key.
    /// </summary>
    public string VolumesDirectory { get; }

    public IReadOnlyCollection<Guid> Running => _vms.Values.Where(v => v.IsRunning).Select(v => v.Spec.VmId).ToList();

    public event Action<MicroVmCrash>? Crashed;

    /// <summary>
    /// KVM or TCG for this driver's guests: forced by <see cref="QemuOptions.Kvm"/>, or probed once (see
    /// <see cref="AcceleratorProbe"/>). Needs QEMU and the guest image, which it builds first if need be.
    /// </summary>
    public async Task<Accelerator?> AcceleratorAsync(CancellationToken ct) =>
        await AcceleratorProbe.ChooseAsync(_options, QemuPath(), await ImageAsync(ct), _logger);

    private string QemuPath() => ProcessRunner.Which(_options.QemuSystem)
        ?? throw new MicroVmBootException($"{_options.QemuSystem} is not installed (Debian: apt-get install qemu-system-x86).");

    /// <summary>Where a host's image cache lives: hosts/&lt;host&gt;/images under the state directory.</summary>
    public static string ImageCacheDirectory(QemuOptions options, string hostName) =>
        Path.Combine(options.ResolvedStateDirectory, "hosts", hostName, "images");

    /// <summary>The guest image this driver boots (built and cached on first use).</summary>
    public async Task<GuestImage> ImageAsync(CancellationToken ct)
    {
        if (_image is not null) return _image;
        await _imageGate.WaitAsync(ct);
        try
        {
            return _image ??= await _images.EnsureAsync(ct);
        }
        finally
        {
            _imageGate.Release();
        }
    }

    public async Task<BootResult> BootAsync(MicroVmSpec spec, IReadOnlyDictionary<Guid, byte[]> volumeKeys, CancellationToken ct)
    {
        var vm = new Vm(spec, Path.Combine(VmsDirectory, spec.VmId.ToString()), Path.Combine(ConsoleDirectory, $"{spec.VmId}.log"))
        {
            VolumeKeys = volumeKeys.ToDictionary(k => k.Key, k => k.Value.ToArray()),
        };
        _ended.RefuseAgain(spec.VmId);
        var existing = _vms.GetOrAdd(spec.VmId, vm);
        if (existing != vm)
        {
            // A duplicate or retried command: the first boot decides, and this one must not start a second QEMU.
            await existing.Booted.Task.WaitAsync(ct);
            return new BootResult(spec.VmId, 0, AlreadyRunning: true);
        }
        try
        {
            var bootMs = await StartAsync(vm, ct);
            vm.Booted.SetResult();
            var encrypted = vm.Key is null ? 0 : spec.EphemeralGiB;
            if (vm.Process!.HasExited) await ReportCrashAsync(vm);
            return new BootResult(spec.VmId, bootMs, AlreadyRunning: false, EncryptedEphemeralGiB: encrypted, ImageDigest: vm.Image?.Rootfs.Digest,
                DownloadedBytes: vm.Image?.DownloadedBytes ?? 0);
        }
        catch (Exception e)
        {
            _vms.TryRemove(new KeyValuePair<Guid, Vm>(spec.VmId, vm));
            vm.StopRequested = true;
            var survivor = "";
            try
            {
                await KillAsync(vm);
            }
            catch (ProcessSurvivedKillException stuck)
            {
                // The boot fails either way; the report says that its QEMU still runs, and the log says it loudly.
                _logger.LogError("microVM {VmId}: {Reason}", spec.VmId, stuck.Message);
                survivor = $"; and {stuck.Message}";
            }
            var failure = e switch
            {
                MicroVmBootException boot => survivor == "" ? boot : new MicroVmBootException(boot.Message + survivor),
                TimeoutException => new MicroVmBootException(
                    $"the guest did not report ready within {_options.BootTimeoutSeconds} s{vm.UnderAccelerator()}{vm.TailText()}{survivor}"),
                OperationCanceledException => new MicroVmBootException("the boot was cancelled" + survivor),
                _ => new MicroVmBootException($"{e.GetType().Name}: {e.Message}{vm.TailText()}{survivor}"),
            };
            vm.Booted.TrySetException(failure);
            if (e is OperationCanceledException && ct.IsCancellationRequested) throw;
            throw failure;
        }
    }

    /// <summary>
    /// Returns once QEMU is gone. A QEMU that outlives its SIGKILL (blocked in I/O) throws <see cref="ProcessSurvivedKillException"/>
    /// and stays listed, so that the retried command waits for it again rather than reporting a stop that did not happen.
    /// </summary>
    public async Task<bool> StopAsync(Guid vmId, CancellationToken ct)
    {
        if (!_vms.TryGetValue(vmId, out var vm)) return false;
        vm.StopRequested = true;
        try
        {
            await vm.Booted.Task.WaitAsync(ct);
        }
        catch (MicroVmBootException)
        {
            return false; // the boot failed and cleaned up after itself
        }
        await ShutdownAsync(vm, TimeSpan.FromSeconds(_options.StopTimeoutSeconds));
        _ended.Add(vmId);
        _vms.TryRemove(new KeyValuePair<Guid, Vm>(vmId, vm));
        return true;
    }

    /// <summary>A host runtime that stops takes its VMs with it: no QEMU may outlive the process that holds their keys.</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_vms.Keys.ToList().Select(async id =>
        {
            try
            {
                await StopAsync(id, CancellationToken.None);
            }
            catch (ProcessSurvivedKillException e)
            {
                _logger.LogError("microVM {VmId} outlives its host runtime: {Reason}", id, e.Message);
            }
        }));
    }

    private async Task<double> StartAsync(Vm vm, CancellationToken ct)
    {
        var qemu = QemuPath();
        GuestImage image;
        try
        {
            image = await ImageAsync(ct);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException)
        {
            throw new MicroVmBootException($"no guest image: {e.Message}");
        }
        var accelerator = await AcceleratorProbe.ChooseAsync(_options, qemu, image, _logger);
        vm.Accelerator = accelerator;
        if (Directory.Exists(vm.Directory)) Directory.Delete(vm.Directory, recursive: true);
        Directory.CreateDirectory(vm.Directory);
        Directory.CreateDirectory(ConsoleDirectory);
        var pending = await BeginImageAsync(vm, ct);
        try
        {
            return await LaunchAsync(vm, qemu, image, accelerator, pending, ct);
        }
        catch
        {
            if (pending is not null && vm.Image is null) ForgetImage(pending);
            throw;
        }
        finally
        {
            // Whatever happened, the image's build must not wait for this VM's QEMU any longer.
            pending?.DiskOpened();
        }
    }

    private async Task<double> LaunchAsync(Vm vm, string qemu, GuestImage image, Accelerator accelerator, PendingImage? pending, CancellationToken ct)
    {
        var kvm = accelerator.Kvm;
        var spec = vm.Spec;

        var cpus = Math.Max(1, _options.MaxCpus > 0 ? Math.Min(spec.Cpu, _options.MaxCpus) : spec.Cpu);
        var memory = Math.Max(MinMemoryMiB, _options.MaxMemoryMiB > 0 ? Math.Min(spec.MemoryMiB, _options.MaxMemoryMiB) : spec.MemoryMiB);
        // loglevel=4 keeps the kernel as terse as "quiet" would, but not its boot stub: "Probing EDD" is then the guest's
        // first console line, within a fraction of a second, so a guest that prints nothing is known to be stuck early.
        // Booted at the PVH entry there is no boot stub, and the console comes up only about a second of emulated work in
        // (10 s and more on a loaded host): earlyprintk prints the kernel's first lines (its version, command line and
        // memory map) at once instead. It comes before loglevel, which would otherwise hide those lines (early parameters
        // apply in their order).
        var (kernel, pvh) = !kvm && _options.FastBootUnderTcg && image.PvhKernel is { } vmlinux ? (vmlinux, true) : (image.Kernel, false);
        var append = new StringBuilder(pvh ? "earlyprintk=ttyS0 " : "").Append($"{GuestCommandLine} kraud.vm={spec.VmId}");
        if (!kvm && _options.FastBootUnderTcg) append.Append(" cryptomgr.notests");
        // Under TCG the guest's TSC runs at the host's rate, and the guest calibrates it against the emulated PIT: on a
        // loaded host that calibration fails and the kernel hangs before its first console line (seen here in about
        // half the boots with load 6 on 2 cores). Telling it the frequency skips the calibration. Under KVM the guest's
        // TSC is the host's as well, so the same value is right there, and a slow KVM cannot hang on it either.
        if (GuestTscKhz(_options) is { } tscKhz) append.Append(" tsc_early_khz=").Append(tscKhz);
        List<string> args =
        [
            "-name", $"kraud-{spec.VmId}", "-M", "microvm", "-accel", kvm ? "kvm" : "tcg", "-cpu", kvm ? "host" : "max",
            "-smp", cpus.ToString(CultureInfo.InvariantCulture), "-m", memory.ToString(CultureInfo.InvariantCulture),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-initrd", image.Initrd,
        ];
        // Secrets reach QEMU through FIFOs, fed in the order QEMU opens them (its -object order).
        var secrets = new List<(string Pipe, Func<byte[]> Secret)>();
        var disks = 0;
        if (spec.EphemeralGiB > 0)
        {
            var sizeMiB = spec.EphemeralGiB * 1024L;
            if (_options.MaxEphemeralMiB > 0) sizeMiB = Math.Min(sizeMiB, _options.MaxEphemeralMiB);
            vm.Key = RandomNumberGenerator.GetBytes(32);
            vm.DiskImage = Path.Combine(vm.Directory, "ephemeral.luks");
            await CreateEncryptedDiskAsync(vm.DiskImage, vm.Key, sizeMiB, vm.Directory, ct);
            var keyPipe = Path.Combine(vm.Directory, "ephemeral.key");
            SecretPipe.Create(keyPipe);
            secrets.Add((keyPipe, vm.EncodedKey));
            args.AddRange(
            [
                "-object", $"secret,id=ephkey,file={QemuOption.Value(keyPipe)}",
                "-blockdev", $"driver=luks,key-secret=ephkey,node-name=eph,file.driver=file,file.filename={QemuOption.Value(vm.DiskImage)}",
                "-device", $"virtio-blk-device,drive=eph,serial={GuestWorkload.EphemeralSerial}",
            ]);
            disks++;
        }
        foreach (var (volume, index) in spec.Attachments.Select((v, i) => (v, i)))
        {
            // Mounted over the VPC from its file server by the guest itself (see GuestWorkload): no device here.
            if (volume.FileServer is not null) continue;
            if (!vm.VolumeKeys.TryGetValue(volume.VolumeId, out var volumeKey)) throw new MicroVmBootException($"no data key for volume {volume.VolumeId}");
            if (volume.Exports is { Count: > 0 })
            {
                // The volume's bytes are on its storage hosts: a quorum of their exports under this QEMU's LUKS layer.
                var quorum = new QuorumVolume(index, volume);
                vm.Quorums[volume.VolumeId] = quorum;
                var quorumKeyPipe = Path.Combine(vm.Directory, $"volume{index}.key");
                SecretPipe.Create(quorumKeyPipe);
                secrets.Add((quorumKeyPipe, () => Encoding.ASCII.GetBytes(Convert.ToBase64String(volumeKey))));
                args.AddRange(["-object", $"secret,id={quorum.Secret},file={QemuOption.Value(quorumKeyPipe)}"]);
                var psk = BlockJobs.WritePskDirectory(Path.Combine(vm.Directory, $"volume{index}.psk"), volume.Access!);
                await quorum.OpenStandInsAsync(_options, psk, ct);
                args.AddRange(quorum.Args(psk));
                disks++;
                continue;
            }
            // Simulated storage hosts keep keys, no bytes: a local image stands in for their replicas.
            var volumeImage = VolumeImageOf(volume.VolumeId);
            if (!File.Exists(volumeImage))
            {
                Directory.CreateDirectory(VolumesDirectory);
                var sizeMiB = volume.SizeGiB * 1024L;
                if (_options.MaxEphemeralMiB > 0) sizeMiB = Math.Min(sizeMiB, _options.MaxEphemeralMiB);
                await CreateEncryptedDiskAsync(volumeImage, volumeKey, sizeMiB, vm.Directory, ct);
            }
            var keyPipe = Path.Combine(vm.Directory, $"volume{index}.key");
            SecretPipe.Create(keyPipe);
            secrets.Add((keyPipe, () => Encoding.ASCII.GetBytes(Convert.ToBase64String(volumeKey))));
            args.AddRange(
            [
                "-object", $"secret,id=volkey{index},file={QemuOption.Value(keyPipe)}",
                "-blockdev", $"driver=luks,key-secret=volkey{index},node-name=vol{index},read-only={(volume.ReadOnly ? "on" : "off")}," +
                             $"file.driver=file,file.filename={QemuOption.Value(volumeImage)}",
                "-device", $"virtio-blk-device,drive=vol{index},serial={GuestWorkload.VolumeSerial(index)}",
            ]);
            disks++;
        }
        disks += ImageDiskArguments(vm, args);
        if (disks > 0) append.Append(" kraud.disks=").Append(disks);
        AddNetworkDevice(vm, args, append);
        // Replicas join a running guest's quorum through QEMU's machine protocol.
        // -S: the guest runs only once the quorums' events are listened to (see StartGuestAsync).
        if (vm.Quorums.Count > 0)
            args.AddRange(["-S", "-qmp", $"unix:{QemuOption.Value(vm.QmpSocket)},server=on,wait=off", "-qmp", $"unix:{QemuOption.Value(vm.EventsSocket)},server=on,wait=off"]);
        WorkloadChannelArguments(vm, args, append);
        if (append.Length > MaxKernelCommandLine)
            throw new MicroVmBootException($"the kernel command line takes {append.Length} bytes; it holds {MaxKernelCommandLine}");
        args.AddRange(["-append", append.ToString()]);

        var (file, arguments) = HostNamespace.Command(_network, qemu, args);
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = vm.Directory,
        };
        foreach (var arg in arguments) start.ArgumentList.Add(arg);
        vm.OpenConsole();
        // A Process, not CliWrap: QEMU lives as long as the VM, its console is read line by line while it runs and
        // POWEROFF is written to its stdin, and its pid goes into the pidfile at once.
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            vm.FirstOutput.TrySetResult();
            vm.OnConsole(e.Data);
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) vm.OnConsole("qemu: " + e.Data); };
        var started = Stopwatch.GetTimestamp();
        process.Start();
        vm.Process = process;
        // Written before anything else can fail: a host runtime that dies from here on leaves a QEMU the next one must find.
        await File.WriteAllTextAsync(Path.Combine(vm.Directory, "qemu.pid"), process.Id.ToString(CultureInfo.InvariantCulture), CancellationToken.None);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        vm.Exited = WatchAsync(vm);
        _ = FailWhenSilentAsync(vm, TimeSpan.FromSeconds(_options.FirstOutputSeconds));
        StartWorkloadStreams(vm);
        if (pending is not null) _ = ReleaseDiskAsync(vm, pending);

        foreach (var (pipe, encode) in secrets)
        {
            var secret = encode();
            try
            {
                await SecretPipe.FeedAsync(pipe, secret, vm.Exited, TimeSpan.FromSeconds(_options.BootTimeoutSeconds));
            }
            finally
            {
                CryptographicOperations.ZeroMemory(secret);
            }
        }
        if (vm.Quorums.Count > 0) await StartGuestAsync(vm, ct);
        if (pending is not null && vm.Image is null)
        {
            // The guest boots while its image is built and waits for the workload's definition, sent once the image is complete.
            await Task.WhenAny(pending.Ready, vm.Ready.Task);
            // QEMU died meanwhile: that is the failure, reported without waiting for the build.
            if (!pending.Ready.IsCompleted) await vm.Ready.Task;
            await AwaitImageAsync(vm, pending);
        }
        FeedWorkload(vm);
        var ready = await vm.Ready.Task.WaitAsync(TimeSpan.FromSeconds(_options.BootTimeoutSeconds), ct);
        var bootMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        _logger.LogInformation("microVM {VmId}: QEMU pid {Pid}, {Cpus} vCPU, {Memory} MiB, {Accel}{Entry}; ready after {BootMs:F0} ms ({Ready})",
            spec.VmId, process.Id, cpus, memory, accelerator.Name, pvh ? " (PVH entry)" : "", bootMs, ready);
        return bootMs;
    }

    /// <summary>
    /// A guest with volumes on block exports starts stopped (-S): it goes on once the watcher listens, as QEMU sends an
    /// event only to monitors connected at the time, and a failed write that nobody hears of would keep the guest stopped.
    /// </summary>
    private async Task StartGuestAsync(Vm vm, CancellationToken ct)
    {
        var events = await MonitorAsync(vm, vm.EventsSocket, ct);
        _ = Task.Run(() => WatchQuorumsAsync(vm, events), CancellationToken.None);
        vm.Qmp ??= await MonitorAsync(vm, vm.QmpSocket, ct);
        await vm.Qmp.ExecuteAsync("cont", null, ct);
    }

    /// <summary>
    /// A monitor of the guest's QEMU. A QEMU that dies before its monitor answers (a volume's key that does not open it)
    /// fails the boot with its exit code and its own words on the console, at once, not with the socket's error 10 s later.
    /// </summary>
    private static async Task<QmpClient> MonitorAsync(Vm vm, string socket, CancellationToken ct)
    {
        var connecting = QmpClient.ConnectAsync(socket, TimeSpan.FromSeconds(10), ct);
        await Task.WhenAny(connecting, vm.Exited);
        if (!connecting.IsCompletedSuccessfully)
        {
            // A monitor that closed on us may be the first sign of the exit: give the process a moment to be seen gone.
            await Task.WhenAny(vm.Exited, Task.Delay(TimeSpan.FromSeconds(5), ct));
            if (vm.Exited.IsCompleted)
            {
                _ = connecting.ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                await vm.Ready.Task;
            }
        }
        return await connecting;
    }

    /// <summary>
    /// Fleet:Network = wireguard: a virtio-net device on a tap in the host's namespace; the guest's init reads its addresses
    /// from the kernel command line. The tap goes with the VM (<see cref="Vm.Clean"/>).
    /// </summary>
    private void AddNetworkDevice(Vm vm, List<string> args, StringBuilder append)
    {
        if (_network is null) return;
        var nic = _network.Attach(vm.Spec);
        vm.Released = () => _network.Detach(vm.Spec.VmId);
        args.AddRange(["-netdev", $"tap,id=net0,ifname={nic.Tap},script=no,downscript=no", "-device", $"virtio-net-device,netdev=net0,mac={nic.Mac}"]);
        append.Append(' ').Append(nic.KernelArguments);
    }

    /// <summary>LUKS formatted by qemu-img with the VM's key (<see cref="LuksImage"/>).</summary>
    private async Task CreateEncryptedDiskAsync(string image, byte[] key, long sizeMiB, string pipeDirectory, CancellationToken ct)
    {
        var qemuImg = ProcessRunner.Which(_options.QemuImg)
            ?? throw new MicroVmBootException($"{_options.QemuImg} is not installed (Debian: apt-get install qemu-utils).");
        var secret = Encoding.ASCII.GetBytes(Convert.ToBase64String(key));
        try
        {
            var result = await LuksImage.CreateAsync(qemuImg, image, $"{sizeMiB}M", secret, Path.Combine(pipeDirectory, "create.key"), ct);
            if (result.ExitCode != 0)
                throw new MicroVmBootException($"qemu-img could not create the encrypted disk {Path.GetFileName(image)}: {result.Error.Trim()}");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    private async Task WatchAsync(Vm vm)
    {
        var process = vm.Process!;
        // Also waits until the console has been read to its end, so the tail is complete.
        await process.WaitForExitAsync(CancellationToken.None);
        vm.Ready.TrySetException(new MicroVmBootException(
            $"QEMU exited with code {process.ExitCode} before the guest was ready{vm.UnderAccelerator()}{vm.TailText()}"));
        if (!vm.StopRequested && vm.Booted.Task.IsCompletedSuccessfully) await ReportCrashAsync(vm);
    }

    /// <summary>A guest silent for this long never started (a hung accelerator, a kernel that cannot run): fail it now.</summary>
    private static async Task FailWhenSilentAsync(Vm vm, TimeSpan deadline)
    {
        await Task.WhenAny(vm.FirstOutput.Task, vm.Exited, Task.Delay(deadline));
        if (!vm.FirstOutput.Task.IsCompleted && !vm.Exited.IsCompleted)
            vm.Ready.TrySetException(new MicroVmBootException(
                $"the guest printed nothing on its console within {deadline.TotalSeconds:F0} s{vm.UnderAccelerator()}{vm.TailText()}"));
    }

    private async Task ReportCrashAsync(Vm vm)
    {
        if (Interlocked.Exchange(ref vm.CrashReported, 1) == 1) return;
        // Ended before it is unlisted: a boot delivered again in between finds it listed or ended, never neither.
        _ended.Add(vm.Spec.VmId);
        if (!_vms.TryRemove(new KeyValuePair<Guid, Vm>(vm.Spec.VmId, vm))) return;
        // The workload's last lines are in its log before anyone hears that it ended.
        try
        {
            await vm.Channels.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException) { }
        var keyHeld = vm.Key is not null;
        vm.Clean();
        if (ReportExit(vm, keyHeld)) return;
        var reason = $"QEMU exited unexpectedly (exit code {vm.Process!.ExitCode}){vm.TailText()}";
        _logger.LogWarning("microVM {VmId} of pod {PodId} crashed: {Reason}", vm.Spec.VmId, vm.Spec.PodId, reason);
        Crashed?.Invoke(new MicroVmCrash(vm.Spec.VmId, vm.Spec.PodId, reason));
    }

    /// <summary>Asks the guest to power off on its console, then kills QEMU when it has not exited by the deadline.</summary>
    private async Task ShutdownAsync(Vm vm, TimeSpan grace)
    {
        var process = vm.Process;
        if (process is not null && !process.HasExited)
        {
            try
            {
                await process.StandardInput.WriteLineAsync("KRAUD-POWEROFF");
                await process.StandardInput.FlushAsync();
                await vm.Exited.WaitAsync(grace);
            }
            catch (Exception e) when (e is IOException or TimeoutException)
            {
                _logger.LogWarning("microVM {VmId} did not power off within {Seconds} s; killing QEMU", vm.Spec.VmId, grace.TotalSeconds);
            }
        }
        await KillAsync(vm);
    }

    /// <summary>
    /// SIGKILL, then QEMU's exit for real (<see cref="ProcessExit"/>): the VM is cleaned only once it is gone, and a QEMU that
    /// outlives the limit throws with its state, as it still holds the disks and the keys.
    /// </summary>
    private async Task KillAsync(Vm vm)
    {
        if (vm.Process is { } process)
            await ProcessExit.KillAsync(process, $"QEMU of microVM {vm.Spec.VmId}", _logger, vm.Exited, TimeSpan.FromSeconds(_options.KillTimeoutSeconds));
        vm.Clean();
    }

    private void KillLeftovers()
    {
        if (!Directory.Exists(VmsDirectory)) return;
        foreach (var directory in Directory.GetDirectories(VmsDirectory))
        {
            var pidFile = Path.Combine(directory, "qemu.pid");
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out var pid)
                && IsQemuOf(pid, Path.GetFileName(directory)))
            {
                _logger.LogWarning("Killing QEMU {Pid} of microVM {VmId}, left behind by a previous host runtime", pid, Path.GetFileName(directory));
                // A leftover that survives its SIGKILL fails the host runtime's start: its disk would be deleted under it.
                ProcessExit.KillForeign(pid, $"QEMU of microVM {Path.GetFileName(directory)}", _logger, TimeSpan.FromSeconds(_options.KillTimeoutSeconds));
            }
            try
            {
                // Its QEMU was killed, so its QMP sockets are still there (in a directory of their own).
                QmpClient.RemoveSocketsUnder(directory);
                Directory.Delete(directory, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
                // Whoever still watched that QEMU (a predecessor in this very process, in tests) cleaned up first.
            }
        }
    }

    /// <summary>The pid may have been reused since the pidfile was written: only a QEMU named after this VM is ours.</summary>
    private static bool IsQemuOf(int pid, string vmId)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains("qemu", StringComparison.Ordinal) && cmdline.Contains($"\0kraud-{vmId}\0", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static readonly Lazy<int?> HostTscKhz = new(ReadHostTscKhz);

    internal static int? GuestTscKhz(QemuOptions options) => options.GuestTscKhz ?? HostTscKhz.Value;

    /// <summary>
    /// The host's TSC frequency: /proc/cpuinfo's "cpu MHz" is it only when the TSC is constant and its frequency known
    /// (tsc_known_freq, as on virtual machines); otherwise null, and the guest calibrates by itself.
    /// </summary>
    private static int? ReadHostTscKhz()
    {
        try
        {
            var cpuinfo = File.ReadAllText("/proc/cpuinfo");
            var flags = Regex.Match(cpuinfo, @"^flags\s*:(?<flags>.*)$", RegexOptions.Multiline | RegexOptions.ExplicitCapture, TimeSpan.FromSeconds(1)).Groups["flags"].Value.Split(' ');
            var mhz = Regex.Match(cpuinfo, @"^cpu MHz\s*:\s*(?<mhz>[0-9.]+)", RegexOptions.Multiline | RegexOptions.ExplicitCapture, TimeSpan.FromSeconds(1));
            if (!flags.Contains("constant_tsc") || !flags.Contains("tsc_known_freq") || !mhz.Success) return null;
            return (int)Math.Round(double.Parse(mhz.Groups["mhz"].Value, CultureInfo.InvariantCulture) * 1000);
        }
        catch (IOException)
        {
            return null;
        }
    }

    // Test hooks (public because the test assembly cannot see this assembly's internals without also seeing its Program):
    // the encryption test reads the disk through the key, the crash test kills the process.
    public bool HoldsEphemeralKey(Guid vmId) => _vms.TryGetValue(vmId, out var vm) && vm.Key is not null;

    public byte[]? EphemeralKeyOf(Guid vmId) => _vms.TryGetValue(vmId, out var vm) ? vm.Key?.ToArray() : null;
    public string VolumeImageOf(Guid volumeId) => Path.Combine(VolumesDirectory, $"{volumeId}.luks");

    public string? EphemeralDiskOf(Guid vmId) => _vms.TryGetValue(vmId, out var vm) ? vm.DiskImage : null;
    public int? ProcessIdOf(Guid vmId) => _vms.TryGetValue(vmId, out var vm) ? vm.Process?.Id : null;
    public string ConsoleLogOf(Guid vmId) => Path.Combine(ConsoleDirectory, $"{vmId}.log");

    private sealed class Vm(MicroVmSpec spec, string directory, string consoleLog)
    {
        private readonly Queue<string> _tail = new();
        private StreamWriter? _console;
        private int _cleaned;

        public MicroVmSpec Spec => spec;
        public string Directory => directory;
        public Process? Process { get; set; }
        public Task Exited { get; set; } = Task.CompletedTask;
        public byte[]? Key { get; set; }
        public string? DiskImage { get; set; }

        /// <summary>Gives back what the VM held outside its directory (its tap); runs once, with <see cref="Clean"/>.</summary>
        public Action? Released { get; set; }

        /// <summary>Volumes on block exports, by volume id: their quorum as this VM's QEMU has it now.</summary>
        public Dictionary<Guid, QuorumVolume> Quorums { get; } = [];

        public string QmpSocket { get; } = QmpClient.SocketPathFor(directory);

        /// <summary>A second monitor, only read for the quorums' events (see WatchQuorumsAsync).</summary>
        public string EventsSocket { get; } = QmpClient.SocketPathFor(directory, "events");

        public QmpClient? Qmp { get; set; }

        /// <summary>Data keys of the volumes this VM mounts, unwrapped; zeroed with the VM.</summary>
        public Dictionary<Guid, byte[]> VolumeKeys { get; init; } = [];
        public volatile bool StopRequested;
        public int CrashReported;
        public TaskCompletionSource Booted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource<string> Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The guest's console said something (QEMU's own messages on stderr do not count).</summary>
        public TaskCompletionSource FirstOutput { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Accelerator? Accelerator { get; set; }

        /// <summary>The image this VM runs, held in the host's cache while it runs.</summary>
        public Images.PulledImage? Image { get; set; }

        /// <summary>The file QEMU opens as the image's disk: the cached erofs, or the one being built for this VM.</summary>
        public string? RootfsPath { get; set; }

        /// <summary>The VM has the workload's ports: an image or a command to run.</summary>
        public bool HasWorkload { get; set; }

        public Logs.WorkloadLog? Log { get; set; }

        /// <summary>The feeding of the definition and the reading of stdout and stderr; done when QEMU is gone.</summary>
        public Task Channels { get; set; } = Task.CompletedTask;

        public int? ExitCode { get; set; }
        public DateTimeOffset? ExitedAt { get; set; }

        /// <summary>For failure reasons: which accelerator ran the guest, and when the configuration forced KVM, that it does not work here.</summary>
        public string UnderAccelerator() => Accelerator switch
        {
            null => "",
            { Kvm: true, Forced: true } => $" under KVM ({Accelerator.Reason}): KVM does not run guests on this host; leave Fleet:Qemu:Kvm unset to let the probe choose",
            _ => $" under {Accelerator}",
        };

        public bool IsRunning => Booted.Task.IsCompletedSuccessfully && IsAlive;

        /// <summary>Its QEMU runs and no stop was asked for, booted or not yet.</summary>
        public bool IsAlive => !StopRequested && Process is { HasExited: false };

        /// <summary>
        /// The LUKS passphrase QEMU's secret object reads: the key in base64, because QEMU takes LUKS passphrases only as
        /// UTF-8 text (still 256 random bits). The caller zeroes it after use.
        /// </summary>
        public byte[] EncodedKey() => Encoding.ASCII.GetBytes(Convert.ToBase64String(Key!));

        public void OpenConsole()
        {
            _console = new StreamWriter(consoleLog, append: true) { AutoFlush = true };
            _console.WriteLine($"--- kraud: boot of {spec.VmId} at {DateTimeOffset.UtcNow:O}");
        }

        public void OnConsole(string line)
        {
            lock (_tail)
            {
                _tail.Enqueue(line);
                if (_tail.Count > ConsoleTailLines) _tail.Dequeue();
                _console?.WriteLine(line);
            }
            var ready = line.IndexOf("KRAUD-READY", StringComparison.Ordinal);
            if (ready >= 0) Ready.TrySetResult(line[ready..]);
            NoteWorkloadExit(this, line);
            var failed = line.IndexOf("KRAUD-FAILED", StringComparison.Ordinal);
            if (failed >= 0) Ready.TrySetException(new MicroVmBootException(line[(failed + "KRAUD-FAILED".Length)..].Trim()));
        }

        public string TailText()
        {
            lock (_tail) return _tail.Count == 0 ? "" : "; console tail:\n" + string.Join('\n', _tail);
        }

        /// <summary>Drops the key and deletes the VM's directory (pidfile, encrypted disk): nothing of it may be read again.</summary>
        public void Clean()
        {
            if (Interlocked.Exchange(ref _cleaned, 1) == 1) return;
            _ = Qmp?.DisposeAsync().AsTask();
            if (Quorums.Count > 0)
            {
                File.Delete(QmpSocket);
                File.Delete(EventsSocket);
            }
            if (Key is not null) CryptographicOperations.ZeroMemory(Key);
            Key = null;
            foreach (var k in VolumeKeys.Values) CryptographicOperations.ZeroMemory(k);
            VolumeKeys.Clear();
            Image?.Dispose();
            Log?.Dispose();
            try
            {
                if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
            }
            catch (IOException) { }
            try
            {
                Released?.Invoke();
            }
            catch (InvalidOperationException) { } // the namespace went first (host runtime shutdown)
            lock (_tail)
            {
                _console?.Dispose();
                _console = null;
            }
        }
    }
}
