using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Network;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Storage;

/// <summary>
/// Volume work a compute host does when no guest of it has the volume: writing a new volume's LUKS header (the data key
/// is made here, on a hypervisor, and leaves only wrapped), and filling a replacement replica from the healthy ones with
/// a storage daemon of its own. Storage hosts could copy bytes too, but the data key must never reach them, and a compute
/// host is where the key already is.
/// </summary>
/// <param name="network">The compute host's namespace when its network is real: what talks to the replicas runs inside it.</param>
public sealed class VolumeWorker(QemuOptions options, string hostDirectory, ILogger logger, HostNamespace? network = null)
{
    private string NewWorkDirectory(Guid volumeId)
    {
        var dir = Path.Combine(hostDirectory, "work", $"{volumeId:N}-{Guid.NewGuid():N}"[..45]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private string QemuImg() => ProcessRunner.Which(options.QemuImg) ?? throw new ResyncException($"{options.QemuImg} is not installed (apt-get install qemu-utils)");

    /// <summary>
    /// Generates the data key, makes a LUKS header with it (qemu-img, on a scratch file here) and writes that header through a
    /// quorum of every replica's export that needs all of them to take it, so the replicas start out identical.
    /// </summary>
    public async Task<WrappedKey> FormatAsync(FormatVolume command, KeyEncryptionKey kek, CancellationToken ct)
    {
        var dir = NewWorkDirectory(command.VolumeId);
        var key = RandomNumberGenerator.GetBytes(32);
        var secret = Encoding.ASCII.GetBytes(Convert.ToBase64String(key));
        try
        {
            var qemuImg = QemuImg();
            var header = Path.Combine(dir, "header.luks");
            var create = await LuksImage.CreateAsync(qemuImg, header, "16M", secret, Path.Combine(dir, "format.key"), ct);
            if (create.ExitCode != 0) throw new ResyncException($"qemu-img could not make the LUKS header: {create.Error.Trim()}");
            var info = await ProcessRunner.RunAsync(qemuImg, ["info", "--output=json", header], TimeSpan.FromSeconds(30), ct);
            var length = JsonDocument.Parse(info.Output).RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("payload-offset").GetInt64();
            var psk = BlockJobs.WritePskDirectory(Path.Combine(dir, "psk"), command.Access);
            var quorum = $"driver=raw,offset=0,size={length},file.driver=quorum,file.vote-threshold={command.Exports.Count}," +
                         string.Join(',', command.Exports.Select((e, i) => LuksHeader.Nbd($"file.children.{i}.", e, command.Access)));
            var (file, arguments) = HostNamespace.Command(network, qemuImg,
                ["convert", "-n", "--object", BlockJobs.TlsCreds("t", "client", psk, command.Access.Identity), "--image-opts",
                    "--target-image-opts", $"driver=raw,offset=0,size={length},file.driver=file,file.filename={header}", quorum]);
            var write = await ProcessRunner.RunAsync(file, arguments, TimeSpan.FromSeconds(120), ct);
            if (write.ExitCode != 0) throw new ResyncException($"could not write the LUKS header to the replicas: {write.Error.Trim()}");
            logger.LogInformation("Volume {VolumeId}: LUKS header ({Bytes} bytes) written to {Count} replicas", command.VolumeId, length, command.Exports.Count);
            return kek.Wrap(Guid.NewGuid(), key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(secret);
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Fills the target from the healthy replicas with no guest attached: a qemu-storage-daemon here mirrors the quorum of
    /// the sources (ciphertext: no key needed) into the target, then reads the quorum with the target in it to prove it
    /// holds what they hold.
    /// </summary>
    public Task<ResyncOutcome> ResyncAsync(ResyncVolumeReplica command, Func<CopyProgress, Task> progress, CancellationToken ct)
    {
        var args = new List<string>();
        foreach (var (source, i) in command.Sources.Select((s, i) => (s, i)))
            args.AddRange(["--blockdev", BlockJobs.NbdArg($"source{i}", source, command.Access, "tls")]);
        args.AddRange(["--blockdev", $"driver=quorum,node-name=peers,vote-threshold={Math.Clamp(command.VoteThreshold, 1, command.Sources.Count)}," +
                                     string.Join(',', command.Sources.Select((_, i) => $"children.{i}=source{i}"))]);
        args.AddRange(["--blockdev", BlockJobs.NbdArg("target", command.Target, command.Access, "tls")]);
        return WithDaemonAsync(command.VolumeId, command.Access, args, $"resyncing volume {command.VolumeId}", async qmp =>
        {
            var started = Stopwatch.GetTimestamp();
            var last = new CopyProgress(0, 0, 0);
            await BlockJobs.MirrorUntilReadyAsync(qmp, "resync", "peers", "target", p =>
            {
                last = p;
                return progress(p);
            }, ct);
            await BlockJobs.FinishMirrorAsync(qmp, "resync", ct);
            await qmp.ExecuteAsync("x-blockdev-change", new Dictionary<string, object> { ["parent"] = "peers", ["node"] = "target" }, ct);
            var differences = await BlockJobs.ScrubAsync(qmp, "peers", "target", "scrub", ct);
            if (differences.Count > 0) throw new ResyncException($"the new replica differs from its peers: {string.Join("; ", differences.Take(3))}");
            return new ResyncOutcome(last.TotalBytes, Stopwatch.GetElapsedTime(started).TotalSeconds, 0);
        }, ct);
    }

    /// <summary>
    /// Scrubs a volume no guest has attached: a storage daemon here reads every replica through a quorum whose reads vote by
    /// majority and names those outvoted. Nobody writes meanwhile (the volume's work is this scrub), so one read decides.
    /// </summary>
    public Task<ScrubFindings> ScrubAsync(ScrubVolumeReplicas command, CancellationToken ct)
    {
        var args = new List<string>();
        var children = new Dictionary<string, Guid>();
        foreach (var (replica, i) in command.Replicas.Select((r, i) => (r, i)))
        {
            args.AddRange(["--blockdev", BlockJobs.NbdArg($"replica{i}", replica, command.Access, "tls") + ",read-only=on"]);
            children[$"replica{i}"] = replica.HostId;
        }
        args.AddRange(["--blockdev", $"driver=quorum,node-name=replicas,read-only=on,vote-threshold={command.Replicas.Count / 2 + 1}," +
                                     string.Join(',', children.Keys.Select((node, i) => $"children.{i}={node}"))]);
        return WithDaemonAsync(command.VolumeId, command.Access, args, $"scrubbing volume {command.VolumeId}",
            qmp => BlockJobs.VoteAsync(qmp, "replicas", children, "scrub", options.ScrubBytesPerSecond, confirm: false, ct), ct);
    }

    /// <summary>
    /// Runs a qemu-storage-daemon here (in the host's namespace) with these block nodes and a TLS-PSK client identity, and
    /// drives it through QMP; the daemon is ended when <paramref name="use"/> is done.
    /// </summary>
    private async Task<T> WithDaemonAsync<T>(Guid volumeId, ExportAccess access, IEnumerable<string> blockArgs, string what, Func<QmpClient, Task<T>> use,
        CancellationToken ct)
    {
        var dir = NewWorkDirectory(volumeId);
        var daemonPath = ProcessRunner.Which(options.QemuStorageDaemon) ?? throw new ResyncException($"{options.QemuStorageDaemon} is not installed");
        var socket = QmpClient.SocketPathFor(dir);
        var psk = BlockJobs.WritePskDirectory(Path.Combine(dir, "psk"), access);

        var args = new List<string> { "--object", BlockJobs.TlsCreds("tls", "client", psk, access.Identity) };
        args.AddRange(blockArgs);
        args.AddRange(["--chardev", $"socket,id=qmp,path={socket},server=on,wait=off", "--monitor", "chardev=qmp"]);
        var (file, arguments) = HostNamespace.Command(network, daemonPath, args);
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in arguments) start.ArgumentList.Add(arg);
        // A Process, not CliWrap: the daemon runs while QMP drives it and is ended here, not by its own exit.
        using var daemon = Process.Start(start) ?? throw new ResyncException("qemu-storage-daemon did not start");
        var errors = new StringBuilder();
        daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (errors) errors.AppendLine(e.Data); };
        daemon.OutputDataReceived += (_, _) => { };
        daemon.BeginErrorReadLine();
        daemon.BeginOutputReadLine();
        try
        {
            await using var qmp = await QmpClient.ConnectAsync(socket, TimeSpan.FromSeconds(30), ct);
            return await use(qmp);
        }
        catch (Exception e) when (e is IOException or QmpException or TimeoutException)
        {
            throw new ResyncException($"{e.Message} {errors}".Trim());
        }
        finally
        {
            await ProcessExit.KillAsync(daemon, $"qemu-storage-daemon {what}", logger);
            File.Delete(socket);
            Directory.Delete(dir, recursive: true);
        }
    }
}
