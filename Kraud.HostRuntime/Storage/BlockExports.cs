using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Network;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.HostRuntime.Storage;

/// <summary>
/// The replicas of a real storage host (driver qemu-microvm): each one a sparse raw file under this host's own state
/// directory, served over NBD by a qemu-storage-daemon of its own. The file holds what compute hosts wrote through
/// their LUKS layer, i.e. ciphertext only: this host never gets a data key (nor the key-encryption key).
/// <para>
/// Access is per client: a compute host's QEMU (or a volume worker) is granted an identity and a pre-shared key, and
/// gets an NBD export named after that identity. The daemon admits a TLS-PSK handshake only with an identity listed in
/// its key file (read at every handshake, so a grant or a revocation needs no restart); a revocation also deletes the
/// identity's export with mode=hard, which drops its open connections and no one else's.
/// </para>
/// </summary>
public sealed class BlockExports : IAsyncDisposable
{
    /// <summary>Room for the LUKS header (about 2 MiB with QEMU's defaults): the guest sees at least the size it asked for.</summary>
    public const long HeaderRoomBytes = 4L << 20;

    private readonly string _directory;
    private readonly QemuOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<Guid, Replica> _replicas = new();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HostNamespace? _network;

    /// <param name="network">
    /// The host's namespace when its network is real: the daemons then run inside it and listen on its underlay address,
    /// where compute hosts' QEMUs (in their own namespaces) reach them; Fleet:Qemu:ExportAddress is for hosts without one.
    /// </param>
    public BlockExports(string directory, QemuOptions options, ILogger? logger = null, HostNamespace? network = null)
    {
        _directory = directory;
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _network = network;
    }

    public static BlockExports ForHost(QemuOptions options, string hostName, ILogger? logger = null, HostNamespace? network = null) =>
        new(Path.Combine(options.ResolvedStateDirectory, "hosts", hostName, "replicas"), options, logger, network);

    /// <summary>Where this host's daemons listen.</summary>
    private string ExportAddress => _network?.UnderlayAddress ?? _options.ExportAddress;

    public string Directory => _directory;

    /// <summary>Replicas whose daemon is serving: what heartbeats report as held.</summary>
    public IReadOnlyCollection<Guid> Volumes => _replicas.Values.Where(r => r.Daemon is { HasExited: false }).Select(r => r.VolumeId).ToList();

    public string ReplicaFileOf(Guid volumeId) => Path.Combine(_directory, volumeId.ToString(), "data.raw");

    /// <summary>The daemon's process id (tests SIGKILL it to cut one replica off).</summary>
    public int? DaemonOf(Guid volumeId) => _replicas.TryGetValue(volumeId, out var r) && r.Daemon is { HasExited: false } d ? d.Id : null;

    /// <summary>The monitor of the daemon that serves the volume's replica (tests make its disk fail reads through it).</summary>
    public QmpClient MonitorOf(Guid volumeId) =>
        _replicas.TryGetValue(volumeId, out var r) && r.Qmp is { } qmp ? qmp : throw new InvalidOperationException($"no replica of volume {volumeId} is served here");

    /// <summary>
    /// Serves the replicas this host kept across a restart of its runtime: a daemon still running is adopted (its clients
    /// stay connected), a dead one is started again on the same port with the same grants.
    /// </summary>
    public async Task StartAsync(CancellationToken ct)
    {
        if (!System.IO.Directory.Exists(_directory)) return;
        foreach (var dir in System.IO.Directory.GetDirectories(_directory))
        {
            if (!Guid.TryParse(Path.GetFileName(dir), out var volumeId) || !File.Exists(Path.Combine(dir, "export.json"))) continue;
            try
            {
                await ServeAsync(volumeId, ct);
            }
            catch (Exception e) when (e is IOException or QmpException or TimeoutException or InvalidOperationException)
            {
                _logger.LogWarning("Replica of volume {VolumeId} could not be served again: {Reason}", volumeId, e.Message);
            }
        }
    }

    /// <summary>Creates the replica (empty, sparse) and serves it; a replica that exists already is served as it is.</summary>
    public async Task<ReplicaExport> ProvisionAsync(Guid volumeId, int sizeGiB, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_replicas.TryGetValue(volumeId, out var existing) && existing.Daemon is { HasExited: false }) return existing.Export;
            var dir = Path.Combine(_directory, volumeId.ToString());
            var data = Path.Combine(dir, "data.raw");
            if (!File.Exists(Path.Combine(dir, "export.json")))
            {
                System.IO.Directory.CreateDirectory(Path.Combine(dir, "psk"));
                var sizeMiB = sizeGiB * 1024L;
                if (_options.MaxVolumeMiB > 0) sizeMiB = Math.Min(sizeMiB, _options.MaxVolumeMiB);
                await using (var file = new FileStream(data, FileMode.Create, FileAccess.Write)) file.SetLength((sizeMiB << 20) + HeaderRoomBytes);
                await WriteKeysAsync(dir, new Dictionary<string, string>());
                await File.WriteAllTextAsync(Path.Combine(dir, "export.json"),
                    JsonSerializer.Serialize(new ReplicaExport(ExportAddress, FreePort(ExportAddress))), ct);
            }
            // Inside the gate: the control plane sends the command again when an answer is late, and a second ServeAsync
            // beside a first one still starting would adopt its daemon and then stop it as the "old" one.
            return (await ServeAsync(volumeId, ct)).Export;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Admits <paramref name="identity"/> with its pre-shared key and gives it an export of its own.</summary>
    public async Task GrantAsync(Guid volumeId, string identity, string pskHex, CancellationToken ct)
    {
        var replica = _replicas.TryGetValue(volumeId, out var r) ? r : throw new InvalidOperationException($"no replica of volume {volumeId} here");
        await replica.Lock.WaitAsync(ct);
        try
        {
            var keys = ReadKeys(replica.DirectoryPath);
            keys[identity] = pskHex;
            await WriteKeysAsync(replica.DirectoryPath, keys);
            await AddExportAsync(replica, identity, ct);
        }
        finally
        {
            replica.Lock.Release();
        }
    }

    /// <summary>Forgets the identity's key and drops its connections (a compute host that lost the volume keeps nothing open).</summary>
    public async Task RevokeAsync(Guid volumeId, string identity, CancellationToken ct)
    {
        if (!_replicas.TryGetValue(volumeId, out var replica)) return;
        await replica.Lock.WaitAsync(ct);
        try
        {
            var keys = ReadKeys(replica.DirectoryPath);
            if (keys.Remove(identity)) await WriteKeysAsync(replica.DirectoryPath, keys);
            // A daemon that died holds no connection of anyone's any more: forgetting the key is all there is to do.
            if (replica.Daemon is not { HasExited: false }) return;
            try
            {
                await replica.Qmp!.ExecuteAsync("block-export-del", new Dictionary<string, object> { ["id"] = identity, ["mode"] = "hard" }, ct);
            }
            catch (QmpException e) when (e.Description.Contains("not found", StringComparison.OrdinalIgnoreCase)) { }
            catch (IOException) when (replica.Daemon.HasExited) { }
        }
        finally
        {
            replica.Lock.Release();
        }
    }

    /// <summary>Stops serving the replica and deletes its file: with the volume's key destroyed elsewhere, this is the erase.</summary>
    public async Task<bool> DestroyAsync(Guid volumeId)
    {
        var dir = Path.Combine(_directory, volumeId.ToString());
        var held = System.IO.Directory.Exists(dir);
        if (_replicas.TryRemove(volumeId, out var replica)) await replica.StopAsync(_logger);
        if (held) System.IO.Directory.Delete(dir, recursive: true);
        return held;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas.Values) await replica.StopAsync(_logger);
        _replicas.Clear();
    }

    private async Task<Replica> ServeAsync(Guid volumeId, CancellationToken ct)
    {
        var dir = Path.Combine(_directory, volumeId.ToString());
        var export = JsonSerializer.Deserialize<ReplicaExport>(await File.ReadAllTextAsync(Path.Combine(dir, "export.json"), ct))!;
        var replica = new Replica(volumeId, dir, export);
        var socket = QmpClient.SocketPathFor(dir);
        if (DaemonPid(dir) is { } pid)
        {
            replica.Daemon = Process.GetProcessById(pid);
            _logger.LogInformation("Adopting the storage daemon {Pid} of volume {VolumeId}", pid, volumeId);
        }
        else
        {
            var daemon = ProcessRunner.Which(_options.QemuStorageDaemon)
                ?? throw new InvalidOperationException($"{_options.QemuStorageDaemon} is not installed (Debian: apt-get install qemu-system-x86).");
            if (File.Exists(socket)) File.Delete(socket);
            var (file, arguments) = HostNamespace.Command(_network, daemon,
                     [
                         "--object", BlockJobs.TlsCreds("tls", "server", Path.Combine(dir, "psk")),
                         "--blockdev", $"driver=file,node-name=file,filename={QemuOption.Value(Path.Combine(dir, "data.raw"))}",
                         "--blockdev", "driver=raw,node-name=replica,file=file",
                         "--nbd-server", $"addr.type=inet,addr.host={export.Address},addr.port={export.Port.ToString(CultureInfo.InvariantCulture)},tls-creds=tls",
                         "--chardev", $"socket,id=qmp,path={QemuOption.Value(socket)},server=on,wait=off", "--monitor", "chardev=qmp",
                         "--pidfile", Path.Combine(dir, "daemon.pid"),
                     ]);
            var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in arguments) start.ArgumentList.Add(arg);
            // A Process, not CliWrap: the daemon serves the replica until it is stopped, and a later runtime adopts it by pid.
            var process = Process.Start(start) ?? throw new InvalidOperationException("qemu-storage-daemon did not start");
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) _logger.LogInformation("storage daemon {VolumeId}: {Line}", volumeId, e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _logger.LogWarning("storage daemon {VolumeId}: {Line}", volumeId, e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            replica.Daemon = process;
        }
        replica.Qmp = await QmpClient.ConnectAsync(socket, TimeSpan.FromSeconds(30), ct);
        // The daemon listens once its monitor answers (it opens them in the order of its options). An adopted daemon's
        // connections get it too.
        try
        {
            var sockets = DaemonSockets.SetNoDelay(replica.Daemon.Id);
            if (sockets == 0) _logger.LogWarning("The storage daemon of volume {VolumeId} has no TCP socket to set TCP_NODELAY on", volumeId);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning("The storage daemon of volume {VolumeId} keeps Nagle's algorithm, its replies with requests in flight wait up to 40 ms: {Reason}",
                volumeId, e.Message);
        }
        foreach (var identity in ReadKeys(dir).Keys) await AddExportAsync(replica, identity, ct);
        if (_replicas.TryRemove(volumeId, out var old)) await old.StopAsync(_logger);
        _replicas[volumeId] = replica;
        _logger.LogInformation("Replica of volume {VolumeId} served on {Address}:{Port}", volumeId, export.Address, export.Port);
        return replica;
    }

    private static async Task AddExportAsync(Replica replica, string identity, CancellationToken ct)
    {
        try
        {
            await replica.Qmp!.ExecuteAsync("block-export-add", new Dictionary<string, object>
            {
                ["type"] = "nbd", ["id"] = identity, ["node-name"] = "replica", ["name"] = identity, ["writable"] = true,
            }, ct);
        }
        catch (QmpException e) when (e.Description.Contains("already", StringComparison.OrdinalIgnoreCase)) { }
    }

    /// <summary>The daemon of a previous runtime of this host, if it still runs for this replica.</summary>
    private static int? DaemonPid(string dir)
    {
        var file = Path.Combine(dir, "daemon.pid");
        if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var pid)) return null;
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains("qemu-storage-daemon", StringComparison.Ordinal) && cmdline.Contains(dir, StringComparison.Ordinal)
                                                                                     && ProcessExit.IsAlive(pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>gnutls reads "identity:hex key" lines; the file is 0600 and rewritten whole, then renamed into place.</summary>
    private static async Task WriteKeysAsync(string dir, IReadOnlyDictionary<string, string> keys)
    {
        var path = Path.Combine(dir, "psk", "keys.psk");
        var temp = path + ".new";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await using (var writer = new StreamWriter(new FileStream(temp, options)))
            foreach (var (identity, key) in keys) await writer.WriteLineAsync($"{identity}:{key}");
        File.Move(temp, path, overwrite: true);
    }

    private static Dictionary<string, string> ReadKeys(string dir)
    {
        var path = Path.Combine(dir, "psk", "keys.psk");
        if (!File.Exists(path)) return [];
        return File.ReadAllLines(path).Select(l => l.Split(':', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
    }

    private int FreePort(string address)
    {
        // The underlay address exists only inside the host's namespace: the probe binds there.
        return _network is null ? Probe() : Netns.Run(_network.Name, Probe);

        int Probe()
        {
            using var listener = new TcpListener(IPAddress.Parse(address), 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }

    private sealed class Replica(Guid volumeId, string directory, ReplicaExport export)
    {
        public Guid VolumeId => volumeId;
        public string DirectoryPath => directory;
        public ReplicaExport Export => export;
        public Process? Daemon { get; set; }
        public QmpClient? Qmp { get; set; }
        public SemaphoreSlim Lock { get; } = new(1, 1);

        /// <summary>Returns once the daemon is gone: the replica's file and port are free only then (<see cref="ProcessExit"/>).</summary>
        public async Task StopAsync(ILogger logger)
        {
            if (Qmp is not null) await Qmp.DisposeAsync();
            if (Daemon is { } daemon) await ProcessExit.KillAsync(daemon, $"qemu-storage-daemon of volume {volumeId}", logger);
            Daemon?.Dispose();
            File.Delete(QmpClient.SocketPathFor(directory));
        }
    }
}
