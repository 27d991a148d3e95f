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
/// the qemu-microvm driver attaches it) beside the same guest on a local LUKS file (its ephemeral disk). With fio (from a
/// disk of its own, <see cref="FioDisk"/>; libaio, O_DIRECT): 4 KiB random read and write and 1 MiB sequential read and
/// write, each at queue depth 1 (one request at a time: its round trip) and 16 (requests in flight, as cloud block storage
/// is benchmarked for IOPS and throughput). With busybox dd, as earlier sessions measured (README keeps their rows):
/// sequential write and read (1 MiB, O_DIRECT; the write twice, the first into a new volume's unallocated blocks, and
/// also 4 MiB a call, which the guest splits into requests in flight), the same through the guest's page cache (a write
/// ending in fsync, a read after dropping the cache: how applications write and read files) and 4 KiB direct I/O at
/// sequential offsets. The ratio volume/local is the figure (target ≥ 0.5 sequential). Then the resync rate of a
/// re-replication: a fourth replica filled by the guest's QEMU while it runs.
/// </summary>
public static partial class BlockIoBench
{
    private const int SeqMiB = 64, SmallOps = 2048;

    /// <summary>Each fio job runs this long after a second's ramp, over the first <see cref="FioMiB"/> of the disk.</summary>
    private const int FioSeconds = 5, FioMiB = 64;

    /// <summary>fio's jobs: name, what the row says, the job's options, and whether its figure is MB/s (else IOPS).</summary>
    private static readonly (string Name, string Row, string Options, bool Throughput)[] FioJobs =
    [
        ("rr1", "4 KiB random read, QD1 (fio)", "--rw=randread --bs=4k --iodepth=1", false),
        ("rr16", "4 KiB random read, QD16 (fio)", "--rw=randread --bs=4k --iodepth=16", false),
        ("rw1", "4 KiB random write, QD1 (fio)", "--rw=randwrite --bs=4k --iodepth=1", false),
        ("rw16", "4 KiB random write, QD16 (fio)", "--rw=randwrite --bs=4k --iodepth=16", false),
        ("sr1", "seq. read 1 MiB, QD1 (fio)", "--rw=read --bs=1M --iodepth=1", true),
        ("sr16", "seq. read 1 MiB, QD16 (fio)", "--rw=read --bs=1M --iodepth=16", true),
        ("sw1", "seq. write 1 MiB, QD1 (fio)", "--rw=write --bs=1M --iodepth=1", true),
        ("sw16", "seq. write 1 MiB, QD16 (fio)", "--rw=write --bs=1M --iodepth=16", true),
    ];

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
            var fioVolume = Guid.NewGuid();
            var fioKey = RandomNumberGenerator.GetBytes(32);
            await FioDisk.BuildAsync(driver, fioVolume, fioKey, root, CancellationToken.None);
            var fio = new VolumeAttachmentSpec(fioVolume, "BLOCK", FioDisk.MountPath, true, 1, null, []);
            var kek = KeyEncryptionKey.LoadOrCreate(Path.Combine(root, "kek"));
            var worker = new VolumeWorker(driver.Options, driver.HostDirectory, NullLogger.Instance);
            var wrapped = await worker.FormatAsync(new FormatVolume(Guid.NewGuid(), volumeId, exports, access), kek, CancellationToken.None);

            var volume = await MeasureAsync(driver, new Dictionary<Guid, byte[]> { [volumeId] = kek.Unwrap(wrapped), [fioVolume] = fioKey },
                Script(GuestWorkload.VolumeSerial(0)), ephemeralGiB: 0,
                [new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, wrapped, [], exports, access, 2), fio]);
            var local = await MeasureAsync(driver, new Dictionary<Guid, byte[]> { [fioVolume] = fioKey }, Script(GuestWorkload.EphemeralSerial),
                ephemeralGiB: 1, [fio]);

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
            Row("seq. write, 1 MiB O_DIRECT, again", volume.SeqWriteAgain, local.SeqWriteAgain, "MB/s", "—");
            Row("sequential read, 1 MiB O_DIRECT", volume.SeqRead, local.SeqRead, "MB/s", "≥ 0.5 (issue 22)");
            Row("sequential write, 4 MiB O_DIRECT", volume.SeqWrite4, local.SeqWrite4, "MB/s", "—");
            Row("sequential write, page cache+fsync", volume.BufferedWrite, local.BufferedWrite, "MB/s", "≥ 0.5 (issue 22)");
            Row("sequential read, cold page cache", volume.BufferedRead, local.BufferedRead, "MB/s", "≥ 0.5 (issue 22)");
            Row("4 KiB write, O_DIRECT", volume.SmallWrite, local.SmallWrite, "IOPS", "—");
            Row("4 KiB read, O_DIRECT", volume.SmallRead, local.SmallRead, "IOPS", "—");
            Console.WriteLine($"{"fio, libaio, O_DIRECT, 64 MiB, " + FioSeconds + " s a job",-34} {"BLOCK volume",14} {"local LUKS",14} {"ratio",7}   mean latency volume / local");
            foreach (var job in FioJobs)
            {
                var (v, l) = (volume.Fio[job.Name], local.Fio[job.Name]);
                Row(job.Row, job.Throughput ? v.MBps : v.Iops, job.Throughput ? l.MBps : l.Iops, job.Throughput ? "MB/s" : "IOPS",
                    $"{v.LatencyMs:F2} / {l.LatencyMs:F2} ms");
            }
            Console.WriteLine($"resync of a replica (online, in the guest's QEMU): {outcome.Bytes / 1e6 / outcome.Seconds:F1} MB/s " +
                              $"({outcome.Bytes / 1048576.0:F0} MiB in {outcome.Seconds:F1} s, copy and check read; guest paused {outcome.PauseMs:F1} ms)");
            Console.WriteLine("dd's 4 KiB rows run at sequential offsets (busybox dd has no random ones); fio's are random. QD1 rows are bound by a");
            Console.WriteLine("request's round trip (latency); QD16 rows keep 16 requests in flight, as cloud block storage is benchmarked.");
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
    /// <param name="Fio">fio's figures by job name (<see cref="FioJobs"/>).</param>
    /// <param name="SeqWriteAgain">The same direct write over the blocks the first one wrote: a new volume's first write also allocates them in each replica's sparse file.</param>
    private sealed record Figures(double SeqWrite, double SeqRead, double SmallWrite, double SmallRead, double BufferedWrite, double BufferedRead,
        string MaxRequestKiB, double SeqWrite4, IReadOnlyDictionary<string, FioFigure> Fio, double SeqWriteAgain);

    /// <summary>One fio job's rate and its requests' mean latency (submission to completion).</summary>
    private sealed record FioFigure(double MBps, double Iops, double LatencyMs)
    {
        /// <summary>
        /// From fio's terse line (version 3, fields split on ';'): the read side starts at field 5 (KiB done, KiB/s, IOPS,
        /// runtime, then slat, clat, 20 percentiles and lat, whose mean is field 5 + 34), the write side at field 46.
        /// </summary>
        public static FioFigure Parse(string name, string terse)
        {
            var f = terse.Split(';');
            if (f.Length < 90 || f[0] != "3" || f[4] != "0") throw new InvalidOperationException($"fio job {name} failed: {terse}");
            var at = double.Parse(f[5], CultureInfo.InvariantCulture) > 0 ? 5 : 46;
            double Field(int i) => double.Parse(f[at + i], CultureInfo.InvariantCulture);
            return new FioFigure(Field(1) * 1024 / 1e6, Field(2), Field(34) / 1000);
        }
    }

    /// <summary>
    /// Each dd step prints "KRAUD-T name centiseconds", the guest's own clock (/proc/uptime; busybox date has no
    /// sub-second format) around dd; each fio job "KRAUD-FIO name" and fio's terse line. The disk measured is the one with
    /// <paramref name="serial"/>. The guest's /init mounted the volume at /data: unmounted first, the raw disk is measured.
    /// fio runs after dd, so that its reads and random writes find the 64 MiB written (a replica's file allocated).
    /// </summary>
    private static string Script(string serial) => $$"""
        umount /data 2>/dev/null
        disk=; for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = {{serial}} ] && disk=/dev/${b##*/}; done
        [ -n "$disk" ] || { echo "no disk {{serial}}"; exit 1; }
        echo "KRAUD-MAXKB $(cat /sys/block/${disk#/dev/}/queue/max_sectors_kb)"
        now() { u=$(cut -d' ' -f1 /proc/uptime); echo $(( ${u%.*} * 100 + 1${u#*.} - 100 )); }
        t() { s=$(now); "$@" 2>/dev/null; e=$(now); echo "KRAUD-T $name $((e-s))"; }
        name=seqw t dd if=/dev/zero of=$disk bs=1M count={{SeqMiB}} oflag=direct conv=fsync
        name=seqw2 t dd if=/dev/zero of=$disk bs=1M count={{SeqMiB}} oflag=direct conv=fsync
        name=seqr t dd if=$disk of=/dev/null bs=1M count={{SeqMiB}} iflag=direct
        name=seqw4 t dd if=/dev/zero of=$disk bs=4M count={{SeqMiB / 4}} oflag=direct conv=fsync
        name=smallw t dd if=/dev/zero of=$disk bs=4k count={{SmallOps}} oflag=direct conv=fsync
        name=smallr t dd if=$disk of=/dev/null bs=4k count={{SmallOps}} iflag=direct
        name=bufw t dd if=/dev/zero of=$disk bs=1M count={{SeqMiB}} conv=fsync
        echo 3 > /proc/sys/vm/drop_caches
        name=bufr t dd if=$disk of=/dev/null bs=1M count={{SeqMiB}}
        fio() {
          job=$1; shift
          out=$({{FioDisk.Command}} --name=$job --filename=$disk --direct=1 --ioengine=libaio --size={{FioMiB}}M --runtime={{FioSeconds}} \
            --ramp_time=1 --time_based --randrepeat=0 --norandommap --minimal --terse-version=3 "$@" 2>&1)
          echo "KRAUD-FIO $job" $out
        }
        {{string.Join("\n", FioJobs.Select(j => $"fio {j.Name} {j.Options}"))}}
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
        var fio = FioLine().Matches(console).ToDictionary(m => m.Groups["name"].Value, m => m.Groups["terse"].Success
            ? FioFigure.Parse(m.Groups["name"].Value, m.Groups["terse"].Value)
            : throw new InvalidOperationException($"fio job {m.Groups["name"].Value} failed: {m.Value}"));
        var ns = Timing().Matches(console).ToDictionary(m => m.Groups["name"].Value, m => double.Parse(m.Groups["ns"].Value, CultureInfo.InvariantCulture));
        double Seconds(string name) => Math.Max(ns[name], 1) / 100;
        return new Figures(SeqMiB * 1.048576 / Seconds("seqw"), SeqMiB * 1.048576 / Seconds("seqr"), SmallOps / Seconds("smallw"), SmallOps / Seconds("smallr"),
            SeqMiB * 1.048576 / Seconds("bufw"), SeqMiB * 1.048576 / Seconds("bufr"), MaxKb().Match(console) is { Success: true } m ? m.Groups["kb"].Value : "?",
            SeqMiB * 1.048576 / Seconds("seqw4"), fio, SeqMiB * 1.048576 / Seconds("seqw2"));
    }

    private static MicroVmSpec Spec(int ephemeralGiB, string script) =>
        new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, "busybox", ["sh", "-c", script], new Dictionary<string, string>(), 1, 256, ephemeralGiB, false);

    [GeneratedRegex(@"KRAUD-T (?<name>\w+) (?<ns>-?\d+)", RegexOptions.None, 1000)]
    private static partial Regex Timing();

    [GeneratedRegex(@"KRAUD-FIO (?<name>\w+)(?:.*? (?<terse>3;fio-\S+))?[^\n]*", RegexOptions.None, 1000)]
    private static partial Regex FioLine();

    [GeneratedRegex(@"KRAUD-MAXKB (?<kb>\d+)", RegexOptions.None, 1000)]
    private static partial Regex MaxKb();

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
