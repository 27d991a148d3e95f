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

    /// <summary>Pulls the VM's image (or finds it in the host's cache) before QEMU starts; the VM holds it in the cache until it is gone.</summary>
    private async Task PullImageAsync(Vm vm, CancellationToken ct)
    {
        if (vm.Spec.Oci is not { } image) return;
        if (_workloads is null) throw new MicroVmBootException("this host runtime was started without an image cache and cannot pull images");
        var auth = image.Credential is { } credential ? OpenCredential(credential, vm.Spec.TenantId) : null;
        try
        {
            vm.Image = await _workloads.Images.PullAsync(image, auth, ct);
        }
        catch (RegistryException e)
        {
            throw new MicroVmBootException($"image pull failed: {e.Message}");
        }
    }

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
        if (vm.Image is null) return 0;
        args.AddRange(
        [
            "-blockdev", $"driver=file,node-name=rootfs,filename={QemuOption.Value(vm.Image.Rootfs.RootfsPath)},read-only=on",
            "-device", $"virtio-blk-device,drive=rootfs,serial={GuestWorkload.RootfsSerial}",
        ]);
        return 1;
    }

    /// <summary>
    /// Three virtio-console ports over FIFOs in the VM's directory (QEMU's pipe backend opens &lt;name&gt;.in and &lt;name&gt;.out):
    /// the workload's definition goes in on one, its stdout and stderr come out on the others. Nothing to run, nothing added.
    /// </summary>
    private static void WorkloadChannelArguments(Vm vm, List<string> args, StringBuilder append)
    {
        if (vm.Image is null && vm.Spec.Command.Count == 0) return;
        vm.WorkloadMessage = GuestWorkload.Message(GuestWorkload.Script(vm.Spec, vm.Image?.Rootfs));
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

    /// <summary>Once QEMU runs: the definition fed to its port, the workload's streams read into its log until QEMU exits.</summary>
    private void StartWorkloadChannels(Vm vm)
    {
        if (vm.WorkloadMessage is not { } message) return;
        vm.Log = new WorkloadLog(WorkloadLogOf(vm.Spec.VmId), vm.Spec, _workloads?.Logs);
        var log = vm.Log;
        var config = Path.Combine(vm.Directory, ConfigPort + ".in");
        vm.Channels = Task.WhenAll(
            Task.Run(async () =>
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
            }),
            PumpAsync(Path.Combine(vm.Directory, StdoutPort + ".out"), "stdout", log, vm.Exited),
            PumpAsync(Path.Combine(vm.Directory, StderrPort + ".out"), "stderr", log, vm.Exited));
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
