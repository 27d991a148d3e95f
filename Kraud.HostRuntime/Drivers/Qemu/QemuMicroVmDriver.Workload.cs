using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Images;
using Kraud.HostRuntime.Logs;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>What a qemu-microvm host needs to run OCI images: its image cache and puller, the fleet's key to open sealed
/// registry credentials, and where workload log lines go besides the host's own files.</summary>
public sealed record WorkloadServices(ImagePuller Images, Lazy<SealingKeyPair> SealingKeys, IWorkloadLogSink? Logs)
{
    public WorkloadServices(ImagePuller images, SealingKeyPair sealing, IWorkloadLogSink? logs) : this(images, new Lazy<SealingKeyPair>(() => sealing), logs) { }

    /// <summary>Opens registry credentials sealed for this host; derived on first use (a storage host never loads the key-encryption key).</summary>
    public SealingKeyPair Sealing => SealingKeys.Value;
}

/// <summary>
/// The workload of a microVM (kept apart from booting and disks): the image pulled before QEMU starts and attached as a
/// read-only disk, the workload's definition sent on a virtio-console port, its stdout and stderr read from two more
/// ports into <see cref="WorkloadLog"/>, and its exit (KRAUD-EXIT on the console, then the guest powers off) raised as
/// <see cref="Exited"/> instead of a crash.
/// </summary>
public sealed partial class QemuMicroVmDriver
{
    private const string ConfigPort = "kraud.config", StdoutPort = "kraud.stdout", StderrPort = "kraud.stderr";

    public event Action<MicroVmExit>? Exited;

    /// <summary>hosts/&lt;host&gt;/logs: one CRI-format log file per microVM's workload.</summary>
    public string LogsDirectory { get; }

    public string WorkloadLogOf(Guid vmId) => Path.Combine(LogsDirectory, $"{vmId}.log");

    /// <summary>The image cache of this host (null when the driver was started without image support).</summary>
    public ImageCache? ImageCache => _workloads?.Images.Cache;

    /// <summary>
    /// Starts the pull of the VM's image (or finds it in the host's cache); the VM holds it in the cache until it is gone.
    /// The VM whose pull starts the image's build boots meanwhile on the file being built (the guest reads it only after
    /// the host sent the workload's definition, see <see cref="FeedWorkload"/>); any other waits here for the image.
    /// </summary>
    private async Task<PendingImage?> BeginImageAsync(Vm vm, CancellationToken ct)
    {
        if (vm.Spec.Oci is not { } image) return null;
        if (_workloads is null) throw new MicroVmBootException("this host runtime was started without an image cache and cannot pull images");
        var auth = image.Credential is { } credential ? OpenCredential(credential, vm.Spec.TenantId) : null;
        var pending = _workloads.Images.Begin(image, auth, ct);
        vm.RootfsPath = pending.EarlyRootfs;
        if (pending.EarlyRootfs is null) await AwaitImageAsync(vm, pending);
        return pending;
    }

    private static async Task AwaitImageAsync(Vm vm, PendingImage pending)
    {
        try
        {
            vm.Image = await pending.Ready;
            vm.RootfsPath = vm.Image.Rootfs.RootfsPath;
        }
        catch (RegistryException e)
        {
            throw new MicroVmBootException($"image pull failed: {e.Message}");
        }
    }

    /// <summary>mkfs.erofs may write the file once this VM's QEMU holds it open: it has once the guest said anything.</summary>
    private static async Task ReleaseDiskAsync(Vm vm, PendingImage pending)
    {
        await Task.WhenAny(vm.FirstOutput.Task, vm.Exited);
        pending.DiskOpened();
    }

    /// <summary>A pull that outlived the boot it was for: the image stays cached, the VM's hold on it goes.</summary>
    private static void ForgetImage(PendingImage pending) =>
        _ = pending.Ready.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully) t.Result.Dispose();
            else _ = t.Exception; // observed: the boot failed for its own reason, or for this one, already reported
        }, TaskScheduler.Default);

    private RegistryAuth OpenCredential(SealedRegistryCredential credential, Guid tenant)
    {
        byte[] password;
        try
        {
            password = SecretSealing.Open(_workloads!.Sealing, credential.Password, SecretSealing.RegistryCredentialContext(tenant, credential.Registry));
        }
        catch (CryptographicException e)
        {
            throw new MicroVmBootException($"cannot open the registry credential for {credential.Registry}: {e.Message}");
        }
        try
        {
            return new RegistryAuth(credential.Username, Encoding.UTF8.GetString(password));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(password);
        }
    }

    /// <summary>The image's erofs, read-only: one file serves every microVM of the image on this host.</summary>
    private static int ImageDiskArguments(Vm vm, List<string> args)
    {
        if (vm.RootfsPath is null) return 0;
        args.AddRange(
        [
            "-blockdev", $"driver=file,node-name=rootfs,filename={QemuOption.Value(vm.RootfsPath)},read-only=on",
            "-device", $"virtio-blk-device,drive=rootfs,serial={GuestWorkload.RootfsSerial}",
        ]);
        return 1;
    }

    /// <summary>
    /// Three virtio-console ports over FIFOs in the VM's directory (QEMU's pipe backend opens &lt;name&gt;.in and &lt;name&gt;.out
    /// read-write, so it never waits for this side): the workload's definition goes in on one, its stdout and stderr come
    /// out on the others. Nothing to run, nothing added.
    /// </summary>
    private static void WorkloadChannelArguments(Vm vm, List<string> args, StringBuilder append)
    {
        if (vm.Spec.Oci is null && vm.Spec.Command.Count == 0) return;
        vm.HasWorkload = true;
        args.AddRange(["-device", "virtio-serial-device,max_ports=4"]);
        foreach (var (id, name) in new[] { ("kcfg", ConfigPort), ("kout", StdoutPort), ("kerr", StderrPort) })
        {
            var path = Path.Combine(vm.Directory, name);
            SecretPipe.Create(path + ".in");
            SecretPipe.Create(path + ".out");
            args.AddRange(["-chardev", $"pipe,id={id},path={QemuOption.Value(path)}", "-device", $"virtserialport,chardev={id},name={name}"]);
        }
        append.Append(" kraud.config=1");
    }

    /// <summary>Once QEMU runs: the workload's streams read into its log until QEMU exits.</summary>
    private void StartWorkloadStreams(Vm vm)
    {
        if (!vm.HasWorkload) return;
        vm.Log = new WorkloadLog(WorkloadLogOf(vm.Spec.VmId), vm.Spec, _workloads?.Logs);
        vm.Channels = Task.WhenAll(
            PumpAsync(Path.Combine(vm.Directory, StdoutPort + ".out"), "stdout", vm.Log, vm.Exited),
            PumpAsync(Path.Combine(vm.Directory, StderrPort + ".out"), "stderr", vm.Log, vm.Exited));
    }

    /// <summary>
    /// Once the image is there: the workload's definition fed to its port. The guest's /init waits for it before it mounts the
    /// image, so a guest that booted while the image was built reads the image only once it is complete.
    /// </summary>
    private void FeedWorkload(Vm vm)
    {
        if (!vm.HasWorkload) return;
        var message = GuestWorkload.Message(GuestWorkload.Script(vm.Spec, vm.Image?.Rootfs));
        var config = Path.Combine(vm.Directory, ConfigPort + ".in");
        vm.Channels = Task.WhenAll(vm.Channels, Task.Run(async () =>
        {
            try
            {
                await SecretPipe.FeedAsync(config, message, vm.Exited, TimeSpan.FromSeconds(_options.BootTimeoutSeconds));
            }
            finally
            {
                // The definition may hold secrets of the pod's environment.
                CryptographicOperations.ZeroMemory(message);
            }
        }));
    }

    private async Task PumpAsync(string fifo, string stream, WorkloadLog log, Task qemuGone)
    {
        try
        {
            await using var source = await SecretPipe.OpenForReadingAsync(fifo, qemuGone);
            await log.PumpAsync(source, stream);
        }
        catch (IOException e)
        {
            _logger.LogWarning("Workload {Stream} of {Fifo} could not be read: {Error}", stream, fifo, e.Message);
        }
    }

    /// <summary>The guest said its workload exited: the code and the moment, before it powers off.</summary>
    private static void NoteWorkloadExit(Vm vm, string line)
    {
        var at = line.IndexOf("KRAUD-EXIT status=", StringComparison.Ordinal);
        if (at < 0 || vm.ExitCode is not null) return;
        var digits = new string(line[(at + "KRAUD-EXIT status=".Length)..].TakeWhile(char.IsAsciiDigit).ToArray());
        if (int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
        {
            vm.ExitedAt = DateTimeOffset.UtcNow;
            vm.ExitCode = code;
        }
    }

    /// <summary>A QEMU that ended after its workload exited: an exit with its code, not a crash.</summary>
    private bool ReportExit(Vm vm, bool keyHeld)
    {
        if (vm.ExitCode is not { } code || vm.ExitedAt is not { } at) return false;
        _logger.LogInformation("microVM {VmId} of pod {PodId}: the workload exited with code {Code}", vm.Spec.VmId, vm.Spec.PodId, code);
        Exited?.Invoke(new MicroVmExit(vm.Spec.VmId, vm.Spec.PodId, code, at, EphemeralErased: keyHeld));
        return true;
    }
}
