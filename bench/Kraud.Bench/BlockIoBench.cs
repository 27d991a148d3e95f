using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.Bench;

/// <summary>
/// I/O in a real guest on a BLOCK volume (LUKS over a quorum of three qemu-storage-daemon NBD exports with TLS-PSK, as
/// the qemu-microvm driver attaches it) beside the same guest on a local LUKS file (its ephemeral disk): sequential write
/// and read (1 MiB, O_DIRECT; the write also 4 MiB a call, which the guest splits into requests in flight), the same
/// through the guest's page cache (a write ending in fsync, a read after dropping the cache: how applications write and
/// read files, with the kernel's own request sizes and read-ahead), and 4 KiB direct I/O, with busybox dd. The ratio
/// volume/local is the figure (target ≥ 0.5 sequential). Then the resync rate of a re-replication: a fourth replica filled by the guest's QEMU while it runs.
/// </summary>
public static partial class BlockIoBench
{
    private const int SeqMiB = 64, SmallOps = 2048;

    public static async Task<int> RunAsync(Options options)
    {
        var root = Path.Combine(Path.GetTempPath(), $"kraud-blockio-{Guid.NewGuid():N}"[..28]);
        var guest = Path.Combine(RepositoryRoot(), ".kraud", "guest");
        QemuOptions Qemu(string name) => new()
        {
            StateDirectory = Path.Combine(root, name), GuestDirectory = guest, MaxMemoryMiB = 256, MaxCpus = 1, BootTimeoutSeconds = 180,
            MaxEphemeralMiB = 96, MaxVolumeMiB = 96,
        };
        var storage = Enumerable.Range(0, 4).Select(i => BlockExports.ForHost(Qemu($"s{i}"), $"s{i}")).ToList();
        await using var driver = QemuMicroVmDriver.Start(Qemu("c0"), "c0");
        try
        {
            var volumeId = Guid.NewGuid();
            var access = new ExportAccess("vm-bench", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
            var exports = new List<ExportEndpoint>();
            for (var i = 0; i < 3; i++)
            {
                var e = await storage[i].ProvisionAsync(volumeId, 1, CancellationToken.None);
                await storage[i].GrantAsync(volumeId, access.Identity, access.Psk, CancellationToken.None);
                exports.Add(new ExportEndpoint(Guid.NewGuid(), $"s{i}", e.Address, e.Port));
            }
            var kek = KeyEncryptionKey.LoadOrCreate(Path.Combine(root, "kek"));
            var worker = new VolumeWorker(driver.Options, driver.HostDirectory, NullLogger.Instance);
            var wrapped = await worker.FormatAsync(new FormatVolume(Guid.NewGuid(), volumeId, exports, access), kek, CancellationToken.None);

            var volume = await MeasureAsync(driver, new Dictionary<Guid, byte[]> { [volumeId] = kek.Unwrap(wrapped) }, Script("/dev/vda"),
                ephemeralGiB: 0, [new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, wrapped, [], exports, access, 2)]);
            var local = await MeasureAsync(driver, new Dictionary<Guid, byte[]>(), Script("/dev/vda"), ephemeralGiB: 1, null);

            // Re-replication: the fourth host's empty replica, filled by a running guest's QEMU.
            var spec = Spec(ephemeralGiB: 0, "sleep 600") with
            {
                Volumes = [new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, wrapped, [], exports.Take(2).ToList(), access, 2)],
            };
            await driver.BootAsync(spec, new Dictionary<Guid, byte[]> { [volumeId] = kek.Unwrap(wrapped) }, CancellationToken.None);
            var spare = await storage[3].ProvisionAsync(volumeId, 1, CancellationToken.None);
            await storage[3].GrantAsync(volumeId, access.Identity, access.Psk, CancellationToken.None);
            var target = new ExportEndpoint(Guid.NewGuid(), "s3", spare.Address, spare.Port);
            var outcome = await driver.ResyncAsync(new ResyncVolumeReplica(Guid.NewGuid(), volumeId, spec.VmId, target, exports.Take(2).ToList(), access, 2),
                _ => Task.CompletedTask, CancellationToken.None);
            await driver.StopAsync(spec.VmId, CancellationToken.None);

            Console.WriteLine($"Block volume I/O in a guest (TCG, 1 vCPU), {Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
            Console.WriteLine($"guest's largest request (max_sectors_kb): {volume.MaxRequestKiB} KiB on the volume, {local.MaxRequestKiB} KiB on the local disk");
            Console.WriteLine($"{"measure",-34} {"BLOCK volume",14} {"local LUKS",14} {"ratio",7}   baseline");
            Row("sequential write, 1 MiB O_DIRECT", volume.SeqWrite, local.SeqWrite, "MB/s", "≥ 0.5 (issue 22)");
            Row("sequential read, 1 MiB O_DIRECT", volume.SeqRead, local.SeqRead, "MB/s", "≥ 0.5 (issue 22)");
            Row("sequential write, 4 MiB O_DIRECT", volume.SeqWrite4, local.SeqWrite4, "MB/s", "—");
            Row("sequential write, page cache+fsync", volume.BufferedWrite, local.BufferedWrite, "MB/s", "≥ 0.5 (issue 22)");
            Row("sequential read, cold page cache", volume.BufferedRead, local.BufferedRead, "MB/s", "≥ 0.5 (issue 22)");
            Row("4 KiB write, O_DIRECT", volume.SmallWrite, local.SmallWrite, "IOPS", "—");
            Row("4 KiB read, O_DIRECT", volume.SmallRead, local.SmallRead, "IOPS", "—");
            Console.WriteLine($"resync of a replica (online, in the guest's QEMU): {outcome.Bytes / 1e6 / outcome.Seconds:F1} MB/s " +
                              $"({outcome.Bytes / 1048576.0:F0} MiB in {outcome.Seconds:F1} s, copy and check read; guest paused {outcome.PauseMs:F1} ms)");
            Console.WriteLine("4 KiB I/O runs at sequential offsets: the guest has busybox only, whose dd has no random offsets; on NBD over TCP and");
            Console.WriteLine("files in the page cache the cost of a small request is its round trip, which sequential offsets measure as well.");
            return 0;
        }
        finally
        {
            foreach (var s in storage) await s.DisposeAsync();
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    private static void Row(string what, double volume, double local, string unit, string baseline) =>
        Console.WriteLine($"{what,-34} {volume,9:F1} {unit,-4} {local,9:F1} {unit,-4} {volume / local,7:F2}   {baseline}");

    /// <param name="MaxRequestKiB">The guest's largest request to the disk (max_sectors_kb), which splits a large direct read or write into requests in flight.</param>
    /// <param name="SeqWrite4">The same direct write 4 MiB a call: the guest splits each into requests in flight (up to max_sectors_kb each).</param>
    private sealed record Figures(double SeqWrite, double SeqRead, double SmallWrite, double SmallRead, double BufferedWrite, double BufferedRead,
        string MaxRequestKiB, double SeqWrite4);

    /// <summary>
    /// Each step prints "KRAUD-T name centiseconds", the guest's own clock (/proc/uptime; busybox date has no
    /// sub-second format) around dd. The guest's /init mounted the volume at /data: unmounted first, the raw disk is measured.
    /// </summary>
    private static string Script(string disk) => $$"""
        umount /data 2>/dev/null
        echo "KRAUD-MAXKB $(cat /sys/block/{{disk[5..]}}/queue/max_sectors_kb)"
        now() { u=$(cut -d' ' -f1 /proc/uptime); echo $(( ${u%.*} * 100 + 1${u#*.} - 100 )); }
        t() { s=$(now); "$@" 2>/dev/null; e=$(now); echo "KRAUD-T $name $((e-s))"; }
        name=seqw t dd if=/dev/zero of={{disk}} bs=1M count={{SeqMiB}} oflag=direct conv=fsync
        name=seqr t dd if={{disk}} of=/dev/null bs=1M count={{SeqMiB}} iflag=direct
        name=seqw4 t dd if=/dev/zero of={{disk}} bs=4M count={{SeqMiB / 4}} oflag=direct conv=fsync
        name=smallw t dd if=/dev/zero of={{disk}} bs=4k count={{SmallOps}} oflag=direct conv=fsync
        name=smallr t dd if={{disk}} of=/dev/null bs=4k count={{SmallOps}} iflag=direct
        name=bufw t dd if=/dev/zero of={{disk}} bs=1M count={{SeqMiB}} conv=fsync
        echo 3 > /proc/sys/vm/drop_caches
        name=bufr t dd if={{disk}} of=/dev/null bs=1M count={{SeqMiB}}
        echo KRAUD-DONE
        """;

    private static async Task<Figures> MeasureAsync(QemuMicroVmDriver driver, Dictionary<Guid, byte[]> keys, string script, int ephemeralGiB,
        IReadOnlyList<VolumeAttachmentSpec>? volumes)
    {
        var spec = Spec(ephemeralGiB, script) with { Volumes = volumes };
        await driver.BootAsync(spec, keys, CancellationToken.None);
        var deadline = Stopwatch.StartNew();
        string console;
        // The script's lines are in the workload's log; KRAUD-EXIT (a failed script) on the console.
        while (!(console = (File.Exists(driver.ConsoleLogOf(spec.VmId)) ? await File.ReadAllTextAsync(driver.ConsoleLogOf(spec.VmId)) : "")
                           + (File.Exists(driver.WorkloadLogOf(spec.VmId)) ? await File.ReadAllTextAsync(driver.WorkloadLogOf(spec.VmId)) : ""))
                   .Contains("KRAUD-DONE", StringComparison.Ordinal))
        {
            if (console.Contains("KRAUD-EXIT", StringComparison.Ordinal)) throw new InvalidOperationException($"the guest's I/O script failed: {console}");
            if (deadline.Elapsed > TimeSpan.FromMinutes(10)) throw new TimeoutException("the guest did not finish its I/O in 10 minutes");
            await Task.Delay(500);
        }
        await driver.StopAsync(spec.VmId, CancellationToken.None);
        var ns = Timing().Matches(console).ToDictionary(m => m.Groups["name"].Value, m => double.Parse(m.Groups["ns"].Value, CultureInfo.InvariantCulture));
        double Seconds(string name) => Math.Max(ns[name], 1) / 100;
        return new Figures(SeqMiB * 1.048576 / Seconds("seqw"), SeqMiB * 1.048576 / Seconds("seqr"), SmallOps / Seconds("smallw"), SmallOps / Seconds("smallr"),
            SeqMiB * 1.048576 / Seconds("bufw"), SeqMiB * 1.048576 / Seconds("bufr"), MaxKb().Match(console) is { Success: true } m ? m.Groups["kb"].Value : "?",
            SeqMiB * 1.048576 / Seconds("seqw4"));
    }

    private static MicroVmSpec Spec(int ephemeralGiB, string script) =>
        new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, "busybox", ["sh", "-c", script], new Dictionary<string, string>(), 1, 256, ephemeralGiB, false);

    [GeneratedRegex(@"KRAUD-T (?<name>\w+) (?<ns>-?\d+)", RegexOptions.None, 1000)]
    private static partial Regex Timing();

    [GeneratedRegex(@"KRAUD-MAXKB (?<kb>\d+)", RegexOptions.None, 1000)]
    private static partial Regex MaxKb();

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
