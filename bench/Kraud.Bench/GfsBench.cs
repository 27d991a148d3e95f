using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Configuration;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Network;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.Bench;

/// <summary>
/// A GFS volume as the qemu-microvm driver serves it, on this machine: its file server (a microVM running Kraud's
/// kraud-nfs-server over the volume, attached as LUKS over a quorum of three qemu-storage-daemon exports) on host B, a
/// client microVM on host A that mounts it over the WireGuard VPC (NFSv4.2, hard). Two host namespaces on an underlay
/// bridge, as the data plane bench has them. The client measures, with busybox dd, sequential write (ending in fsync) and
/// read (after dropping its caches), and fsync'd 4 KiB writes, on the GFS mount and, as the baseline, on a BLOCK volume of
/// its own (three exports on its host, attached to the same guest). Then failover: the file server's QEMU is SIGKILLed
/// (its host dies), a new file server microVM boots at the same address on B (what the control plane places after it
/// noticed the death), and the client's longest stall between two fsync'd appends is the figure. It does not contain the
/// control plane's share (detection after Fleet:HeartbeatTimeoutSeconds, placement): GfsVolumeSpecs measures it end to end.
/// </summary>
public static partial class GfsBench
{
    private const string Overlay = "10.251.0.0/23";
    private const string ServerIp = "10.251.0.2";
    private const string ClientIp = "10.251.0.3";
    private const int SeqMiB = 32, SmallOps = 200;

    public static async Task<int> RunAsync(Options options)
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var state = Path.Combine(Path.GetTempPath(), $"kraud-gfs-bench-{suffix}");
        using var removeState = new RemovedAtDispose(state);
        var subnet = Random.Shared.Next(0, 256);
        var fleet = new FleetOptions
        {
            Network = NetworkModes.WireGuard, Underlay = $"krg{suffix}", UnderlayCidr = $"100.65.{subnet}.0/24",
            Qemu = new QemuOptions
            {
                StateDirectory = state, GuestDirectory = Path.Combine(RepositoryRoot(), ".kraud", "guest"), MaxMemoryMiB = 256, MaxCpus = 1,
                BootTimeoutSeconds = 240, Kvm = options.Kvm, MaxVolumeMiB = 128,
            },
        };
        using var keysA = new WireGuardKeys();
        using var keysB = new WireGuardKeys();
        // A: the client guest; B: the file server (and its replicas' daemons, on B's underlay address).
        using var a = HostNamespace.Start(fleet, new HostDefinition { Name = $"gfs-a-{suffix}", UnderlayAddress = $"100.65.{subnet}.10" }, keysA.PrivateKey(), NullLogger.Instance);
        using var b = HostNamespace.Start(fleet, new HostDefinition { Name = $"gfs-b-{suffix}", UnderlayAddress = $"100.65.{subnet}.11" }, keysB.PrivateKey(), NullLogger.Instance);
        a.ApplyWireGuard(WireGuardInterface.Render(keysA.PrivateKey(),
            [new WireGuardPeer(Guid.Empty, b.HostName, keysB.PublicKey, $"{b.UnderlayAddress}:51820", [$"{ServerIp}/32"])]));
        b.ApplyWireGuard(WireGuardInterface.Render(keysB.PrivateKey(),
            [new WireGuardPeer(Guid.Empty, a.HostName, keysA.PublicKey, $"{a.UnderlayAddress}:51820", [$"{ClientIp}/32"])]));
        var tenant = Guid.NewGuid();
        var discovery = new ApplyServiceDiscovery(Guid.Empty, 1, [new TenantNetwork(tenant, "fd00:bbbb:dddd::/48",
            [new NamespaceOverlay("default", Overlay, "fd00:bbbb:dddd:1::/64")], [])]);
        a.ApplyServiceDiscovery(discovery);
        b.ApplyServiceDiscovery(discovery);

        await using var driverA = QemuMicroVmDriver.Start(fleet.Qemu, a.HostName, null, network: a);
        await using var driverB = QemuMicroVmDriver.Start(fleet.Qemu, b.HostName, null, network: b);
        var accelerator = (await driverA.AcceleratorAsync(CancellationToken.None))!;
        var kek = KeyEncryptionKey.LoadOrCreate(Path.Combine(state, "kek"));
        var storage = new List<BlockExports>();
        try
        {
            var gfs = await VolumeAsync("gfs", b, fleet.Qemu, kek, storage, driverB);
            var block = await VolumeAsync("blk", a, fleet.Qemu, kek, storage, driverA);

            var server = ServerSpec(tenant, gfs);
            await driverB.BootAsync(server, new Dictionary<Guid, byte[]> { [gfs.Id] = kek.Unwrap(gfs.Key) }, CancellationToken.None);
            await UntilAsync(driverB.WorkloadLogOf(server.VmId), "kraud-nfs-server: serving", TimeSpan.FromMinutes(4));

            var client = new MicroVmSpec(Guid.NewGuid(), Guid.NewGuid(), tenant, 0, 0, "busybox", ["sh", "-c", ClientScript], new Dictionary<string, string>(), 1,
                256, 0, false, Ip4: ClientIp, Ip6: null, Volumes:
                [
                    new VolumeAttachmentSpec(gfs.Id, "GFS", "/data", false, 1, null, [], FileServer: ServerIp),
                    new VolumeAttachmentSpec(block.Id, "BLOCK", "/blk", false, 1, block.Key, [], block.Exports, block.Access, 2),
                ]);
            await driverA.BootAsync(client, new Dictionary<Guid, byte[]> { [block.Id] = kek.Unwrap(block.Key) }, CancellationToken.None);
            var log = driverA.WorkloadLogOf(client.VmId);
            await UntilAsync(log, "KRAUD-IO-DONE", TimeSpan.FromMinutes(10));
            await AcksAsync(log, 5, TimeSpan.FromMinutes(2));

            // The file server's host dies: its QEMU is killed; the replacement boots at the same address once the old one is gone.
            // (Its tap and address are given back when the driver has noticed: it says so with Crashed or Exited.)
            var gone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            driverB.Crashed += c => { if (c.VmId == server.VmId) gone.TrySetResult(); };
            driverB.Exited += x => { if (x.VmId == server.VmId) gone.TrySetResult(); };
            var killedAt = Stopwatch.StartNew();
            using (var qemu = Process.GetProcessById(driverB.ProcessIdOf(server.VmId)!.Value)) qemu.Kill();
            var beforeKill = Ack().Matches(ReadShared(log)).Count;
            await gone.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var replacement = ServerSpec(tenant, gfs) with { Generation = 1 };
            await driverB.BootAsync(replacement, new Dictionary<Guid, byte[]> { [gfs.Id] = kek.Unwrap(gfs.Key) }, CancellationToken.None);
            await UntilAsync(driverB.WorkloadLogOf(replacement.VmId), "kraud-nfs-server: serving", TimeSpan.FromMinutes(4));
            var serving = killedAt.Elapsed;
            await AcksAsync(log, beforeKill + 1, TimeSpan.FromMinutes(3));
            var resumed = killedAt.Elapsed;
            var after = await AcksAsync(log, beforeKill + 5, TimeSpan.FromMinutes(3));
            var stall = after.Zip(after.Skip(1), (x, y) => y.Uptime - x.Uptime).Max();
            var output = ReadShared(log);
            var lostAcks = after.Select(x => x.Record).Zip(after.Skip(1).Select(x => x.Record), (x, y) => y - x).Any(d => d != 1);

            var t = Timings(output);
            double MBps(string name) => SeqMiB * 1.048576 / t[name];
            Console.WriteLine();
            Console.WriteLine($"GFS volume (NFSv4.2 from a file server microVM on another host, over WireGuard) beside a BLOCK volume in the same client guest;");
            Console.WriteLine($"guests 1 vCPU 256 MiB under {accelerator.Name}, {Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
            Console.WriteLine();
            Console.WriteLine("| measure (busybox dd in the client) | GFS volume | BLOCK volume (baseline) | ratio GFS / BLOCK |");
            Console.WriteLine("|---|---|---|---|");
            Console.WriteLine($"| sequential write {SeqMiB} MiB, ending in fsync | {MBps("gw"):F1} MB/s | {MBps("bw"):F1} MB/s | {MBps("gw") / MBps("bw"):F2} |");
            Console.WriteLine($"| sequential read, caches dropped | {MBps("gr"):F1} MB/s | {MBps("br"):F1} MB/s | {MBps("gr") / MBps("br"):F2} |");
            Console.WriteLine($"| 4 KiB write + fsync, {SmallOps} times | {SmallOps / t["gs"]:F0} ops/s | {SmallOps / t["bs"]:F0} ops/s | {t["bs"] / t["gs"]:F2} |");
            Console.WriteLine();
            Console.WriteLine("| failover (file server's QEMU killed, a new one booted at once on its host) | measured | baseline |");
            Console.WriteLine("|---|---|---|");
            Console.WriteLine($"| new file server serving, after the kill | {serving.TotalSeconds:F1} s | - |");
            Console.WriteLine($"| client's longest stall between two fsync'd appends (guest clock) | {stall:F1} s | GfsVolumeSpecs' bound 90 s (end to end, with detection) |");
            Console.WriteLine($"| the client's first append acknowledged after the kill (host clock, polled every 250 ms) | {resumed.TotalSeconds:F1} s | - |");
            Console.WriteLine($"| acknowledged appends missing after it | {(lostAcks ? "some (see the client's log)" : "none")} | none |");
            Console.WriteLine("Not in these figures: the control plane noticing the dead host (Fleet:HeartbeatTimeoutSeconds, 10 s by default) and placing");
            Console.WriteLine("the file server elsewhere; GfsVolumeSpecs measured clients writing again 33-38 s after the kill with both.");
            await driverA.StopAsync(client.VmId, CancellationToken.None);
            await driverB.StopAsync(replacement.VmId, CancellationToken.None);
            return 0;
        }
        finally
        {
            foreach (var s in storage) await s.DisposeAsync();
        }
    }

    private sealed record BenchVolume(Guid Id, WrappedKey Key, List<ExportEndpoint> Exports, ExportAccess Access);

    /// <summary>Three exports of a new volume on <paramref name="host"/>'s underlay address, formatted there; the microVMs' access granted.</summary>
    private static async Task<BenchVolume> VolumeAsync(string name, HostNamespace host, QemuOptions qemu, KeyEncryptionKey kek, List<BlockExports> storage,
        QemuMicroVmDriver driver)
    {
        var id = Guid.NewGuid();
        var access = new ExportAccess($"vm-{name}", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        var exports = new List<ExportEndpoint>();
        for (var i = 0; i < 3; i++)
        {
            var daemon = BlockExports.ForHost(qemu, $"{name}{i}", NullLogger.Instance, host);
            storage.Add(daemon);
            var e = await daemon.ProvisionAsync(id, 1, CancellationToken.None);
            await daemon.GrantAsync(id, access.Identity, access.Psk, CancellationToken.None);
            exports.Add(new ExportEndpoint(Guid.NewGuid(), $"{name}{i}", e.Address, e.Port));
        }
        var key = await new VolumeWorker(driver.Options, driver.HostDirectory, NullLogger.Instance, host)
            .FormatAsync(new FormatVolume(Guid.NewGuid(), id, exports, access), kek, CancellationToken.None);
        return new BenchVolume(id, key, exports, access);
    }

    private static MicroVmSpec ServerSpec(Guid tenant, BenchVolume gfs) =>
        new(Guid.NewGuid(), Guid.NewGuid(), tenant, 0, 0, "busybox", ["/bin/kraud-nfs-server", "/srv/gfs"], new Dictionary<string, string>(), 1, 256, 0,
            false, Ip4: ServerIp, Ip6: null, Volumes: [new VolumeAttachmentSpec(gfs.Id, "GFS", "/srv/gfs", false, 1, gfs.Key, [], gfs.Exports, gfs.Access, 2)]);

    /// <summary>Each step prints "KRAUD-T name centiseconds" by the guest's clock; then fsync'd 16-byte appends, each acknowledged with its uptime.</summary>
    private static readonly string ClientScript = $$"""
        now() { u=$(cut -d' ' -f1 /proc/uptime); echo $(( ${u%.*} * 100 + 1${u#*.} - 100 )); }
        t() { s=$(now); "$@" 2>/dev/null; e=$(now); echo "KRAUD-T $name $((e-s))"; }
        small() { i=0; while [ $i -lt {{SmallOps}} ]; do dd if=/dev/zero of=$1/small bs=4k count=1 seek=$i conv=notrunc,fsync 2>/dev/null; i=$((i+1)); done; }
        for d in g:/data b:/blk; do
          n=${d%%:*}; p=${d#*:}
          name=${n}w t dd if=/dev/zero of=$p/seq bs=1M count={{SeqMiB}} conv=fsync
          echo 3 > /proc/sys/vm/drop_caches
          name=${n}r t dd if=$p/seq of=/dev/null bs=1M
          name=${n}s t small $p
        done
        echo KRAUD-IO-DONE
        i=0
        while :; do
          printf '%015d\n' $i | dd of=/data/log bs=16 count=1 seek=$i conv=notrunc,fsync 2>/dev/null && echo "KRAUD-ACK $i $(cut -d' ' -f1 /proc/uptime)"
          i=$((i+1)); sleep 0.5
        done
        """;

    private static Dictionary<string, double> Timings(string output) =>
        Timing().Matches(output).ToDictionary(m => m.Groups["name"].Value, m => Math.Max(double.Parse(m.Groups["cs"].Value, CultureInfo.InvariantCulture), 1) / 100);

    private static async Task<List<(int Record, double Uptime)>> AcksAsync(string log, int count, TimeSpan within)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var acks = Ack().Matches(ReadShared(log)).Select(m => (int.Parse(m.Groups["i"].Value, CultureInfo.InvariantCulture),
                double.Parse(m.Groups["up"].Value, CultureInfo.InvariantCulture))).ToList();
            if (acks.Count >= count) return acks;
            if (deadline.Elapsed > within) throw new TimeoutException($"the client acknowledged {acks.Count} appends, not {count}, within {within.TotalSeconds:F0} s");
            await Task.Delay(250);
        }
    }

    private static async Task UntilAsync(string log, string what, TimeSpan within)
    {
        var deadline = Stopwatch.StartNew();
        while (!ReadShared(log).Contains(what, StringComparison.Ordinal))
        {
            if (deadline.Elapsed > within) throw new TimeoutException($"'{what}' did not come within {within.TotalSeconds:F0} s:\n{Tail(ReadShared(log))}");
            await Task.Delay(250);
        }
    }

    private static string Tail(string text) => text[^Math.Min(text.Length, 3000)..];

    private static string ReadShared(string path)
    {
        if (!File.Exists(path)) return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    [GeneratedRegex(@"KRAUD-T (?<name>\w+) (?<cs>-?\d+)", RegexOptions.None, 1000)]
    private static partial Regex Timing();

    [GeneratedRegex(@"KRAUD-ACK (?<i>\d+) (?<up>[0-9.]+)", RegexOptions.None, 1000)]
    private static partial Regex Ack();

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Kraud.sln not found above the benchmark.");
    }
}
