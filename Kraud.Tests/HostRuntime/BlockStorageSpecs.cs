using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Storage;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Kraud.Tests.HostRuntime;

/// <summary>
/// The host runtime's half of volumes with bytes, without a control plane: storage hosts' exports (real
/// qemu-storage-daemons), a compute host's worker that formats, and a real guest whose QEMU writes through a quorum of
/// them, loses one and takes a replacement in while it writes.
/// </summary>
[Collection(QemuCollection.Name)]
public sealed class BlockStorageSpecs(QemuFixture qemu, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<BlockExports> _storage = [];
    private readonly List<QemuMicroVmDriver> _drivers = [];
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"kraud-bs-{Guid.NewGuid():N}"[..22]);

    private QemuOptions Options(string name)
    {
        var options = qemu.Options(Path.Combine(_root, name));
        options.MaxVolumeMiB = 80;
        return options;
    }

    private BlockExports StorageHost(string name)
    {
        var exports = BlockExports.ForHost(Options(name), name);
        _storage.Add(exports);
        return exports;
    }

    private static ExportAccess NewAccess(string identity) => new(identity, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));

    private static async Task<ExportEndpoint> ServeAsync(BlockExports host, string name, Guid volumeId, params ExportAccess[] clients)
    {
        var export = await host.ProvisionAsync(volumeId, 1, CancellationToken.None);
        foreach (var client in clients) await host.GrantAsync(volumeId, client.Identity, client.Psk, CancellationToken.None);
        return new ExportEndpoint(Guid.NewGuid(), name, export.Address, export.Port);
    }

    /// <summary>The console (kernel, /init, KRAUD-EXIT) and the workload's log (its stdout, in CRI format) together.</summary>
    private static async Task<string> OutputOf(QemuMicroVmDriver driver, Guid vmId) =>
        (File.Exists(driver.ConsoleLogOf(vmId)) ? await File.ReadAllTextAsync(driver.ConsoleLogOf(vmId)) : "")
        + (File.Exists(driver.WorkloadLogOf(vmId)) ? await File.ReadAllTextAsync(driver.WorkloadLogOf(vmId)) : "");

    private static async Task<string> ConsoleUntilAsync(QemuMicroVmDriver driver, Guid vmId, string what, int seconds) =>
        await Eventually.Get(() => OutputOf(driver, vmId),
            c => c.Contains(what, StringComparison.Ordinal) || c.Contains("KRAUD-EXIT", StringComparison.Ordinal), TimeSpan.FromSeconds(seconds),
            $"the guest printed {what}");

    /// <summary>A volume served by three of four storage hosts (the fourth a spare), formatted by compute host c0 through the worker's access.</summary>
    private sealed record FormattedVolume(Guid VolumeId, List<BlockExports> Hosts, ExportAccess Worker, List<ExportEndpoint> Exports, KeyEncryptionKey Kek,
        QemuMicroVmDriver Compute, WrappedKey Wrapped);

    private async Task<FormattedVolume> FormattedAsync()
    {
        var volumeId = Guid.NewGuid();
        var hosts = Enumerable.Range(0, 4).Select(i => StorageHost($"s{i}")).ToList();
        var worker = NewAccess("worker-test");
        var exports = new List<ExportEndpoint>();
        for (var i = 0; i < 3; i++) exports.Add(await ServeAsync(hosts[i], $"s{i}", volumeId, worker));
        var kek = KeyEncryptionKey.LoadOrCreate(Path.Combine(_root, "kek"));
        var compute = QemuMicroVmDriver.Start(Options("c0"), "c0");
        _drivers.Add(compute);
        var wrapped = await new VolumeWorker(compute.Options, compute.HostDirectory, NullLogger.Instance)
            .FormatAsync(new FormatVolume(Guid.NewGuid(), volumeId, exports, worker), kek, CancellationToken.None);
        return new FormattedVolume(volumeId, hosts, worker, exports, kek, compute, wrapped);
    }

    /// <summary>A microVM's access of its own (vm-…), granted on the first <paramref name="copies"/> storage hosts of the volume.</summary>
    private static async Task<ExportAccess> GuestAccessAsync(FormattedVolume volume, int copies)
    {
        var vm = NewAccess($"vm-{Guid.NewGuid():N}");
        foreach (var host in volume.Hosts.Take(copies)) await host.GrantAsync(volume.VolumeId, vm.Identity, vm.Psk, CancellationToken.None);
        return vm;
    }

    /// <summary>A microVM that mounts the volume at /data as a RED volume on its first two copies (one is enough to go on) and runs <paramref name="script"/>.</summary>
    private static MicroVmSpec RedGuest(FormattedVolume volume, ExportAccess vm, string script) => QemuFixture.Spec(0, "sh", "-c", script) with
    {
        Volumes = [new VolumeAttachmentSpec(volume.VolumeId, "RED", "/data", false, 1, volume.Wrapped, [], volume.Exports.Take(2).ToList(), vm, 1)],
    };

    /// <summary>
    /// The guest script of the specs that cut a copy off while the guest writes: 16 MiB of random data written to the
    /// volume one synced MiB at a time (after <paramref name="beforeWrites"/>), then, <paramref name="settleSeconds"/> later
    /// (the cut copy's client connected again), every MiB read back past the guest's cache and compared (KRAUD-CHECKED).
    /// </summary>
    private static string SyncedWritesReadBack(string beforeWrites, int settleSeconds) => $$"""
        dd if=/dev/urandom of=/tmp/blob bs=1M count=16 2>/dev/null
        {{beforeWrites}}
        i=0
        while [ $i -lt 16 ]; do
          dd if=/tmp/blob of=/data/blob bs=1M count=1 skip=$i seek=$i conv=notrunc,fsync 2>/dev/null || echo "KRAUD-IO-ERROR write $i"
          i=$((i+1)); echo "written $i MiB"; sleep 0.3
        done
        sync
        sleep {{settleSeconds}}
        echo 3 > /proc/sys/vm/drop_caches
        bad=""
        i=0
        while [ $i -lt 16 ]; do
          want=$(dd if=/tmp/blob bs=1M count=1 skip=$i 2>/dev/null | sha256sum | cut -d' ' -f1)
          got=$(dd if=/data/blob bs=1M count=1 skip=$i 2>/dev/null | sha256sum | cut -d' ' -f1) || echo "KRAUD-IO-ERROR read $i"
          [ "$want" = "$got" ] || bad="$bad $i"
          i=$((i+1))
        done
        echo "KRAUD-CHECKED wrong MiB:${bad:- none}"
        exec sleep 3600
        """;

    /// <summary>What a guest of <see cref="SyncedWritesReadBack"/> saw: no I/O error, and every MiB read back as written.</summary>
    private static async Task AssertEveryMiBReadBackRightAsync(QemuMicroVmDriver compute, Guid vmId, int seconds)
    {
        var console = await ConsoleUntilAsync(compute, vmId, "KRAUD-CHECKED", seconds);
        Assert.DoesNotContain("KRAUD-IO-ERROR", console, StringComparison.Ordinal);
        Assert.DoesNotContain("I/O error", console, StringComparison.Ordinal);
        var read = console.Split('\n').Single(l => l.Contains("KRAUD-CHECKED ", StringComparison.Ordinal)).Trim();
        Assert.EndsWith("KRAUD-CHECKED wrong MiB: none", read, StringComparison.Ordinal);
    }

    /// <summary>The guest's QEMU is SIGKILLed (a compute host that crashes: nothing is flushed on the way out), and gone.</summary>
    private static async Task CrashAsync(QemuMicroVmDriver compute, Guid vmId)
    {
        using (var crashed = System.Diagnostics.Process.GetProcessById(compute.ProcessIdOf(vmId)!.Value)) crashed.Kill();
        await Eventually.Until(() => Task.FromResult(QemuFixture.QemuProcessesOf(vmId).Count == 0), TimeSpan.FromSeconds(30), "the QEMU is gone");
    }

    /// <summary>
    /// A microVM of compute host c0 that mounts the volume at /data through an access of its own (vm-…) and runs
    /// <paramref name="script"/>, which prints KRAUD-READY once it has written what the spec needs.
    /// </summary>
    private static async Task<(ExportAccess Vm, MicroVmSpec Spec)> ReadyGuestAsync(FormattedVolume volume, string script)
    {
        var vm = await GuestAccessAsync(volume, 3);
        var spec = QemuFixture.Spec(0, "sh", "-c", script) with
        {
            Volumes = [new VolumeAttachmentSpec(volume.VolumeId, "BLOCK", "/data", false, 1, volume.Wrapped, [], volume.Exports, vm, 2)],
        };
        await volume.Compute.BootAsync(spec, new Dictionary<Guid, byte[]> { [volume.VolumeId] = volume.Kek.Unwrap(volume.Wrapped) }, CancellationToken.None);
        await ConsoleUntilAsync(volume.Compute, spec.VmId, "KRAUD-READY", 120);
        return (vm, spec);
    }

    /// <summary>
    /// QEMU 7.2's NBD server sends a reply as several small TLS records and never sets TCP_NODELAY, so with requests in
    /// flight a reply waited for the client's delayed acknowledgement (40 ms); the host runtime sets it on the daemon's
    /// sockets. Its connections are the ones that matter: one accepted after the daemon started inherits the listener's.
    /// </summary>
    [Fact]
    public async Task a_replica_exports_connections_send_without_waiting_for_acknowledgements_tcp_nodelay_on_the_listener_and_every_accepted_connection()
    {
        var host = StorageHost("s0");
        var volumeId = Guid.NewGuid();
        var export = await ServeAsync(host, "s0", volumeId, NewAccess("client-test"));
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(export.Address, export.Port);
        var greeting = new byte[8];
        await client.GetStream().ReadExactlyAsync(greeting);
        Assert.Equal("NBDMAGIC", Encoding.ASCII.GetString(greeting));

        var sockets = DaemonSockets.NoDelayOf(host.DaemonOf(volumeId) ?? throw new InvalidOperationException("no daemon serves the replica"));
        Assert.Equal(2, sockets.Count); // the listener and this connection
        Assert.All(sockets, Assert.True);
    }

    [Fact]
    public async Task a_guest_writes_through_a_quorum_of_exports_without_an_error_when_one_dies_a_replacement_filled_while_it_writes_equals_its_peers_and_a_crash_after_fsync_loses_nothing()
    {
        // A compute host makes the key and writes one header through all three; the storage hosts got no key.
        var (volumeId, hosts, worker, exports, kek, compute, wrapped) = await FormattedAsync();
        var headers = exports.Select((_, i) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(hosts[i].ReplicaFileOf(volumeId))))).ToList();
        Assert.Single(headers.Distinct());
        foreach (var host in hosts.Take(3)) await host.RevokeAsync(volumeId, worker.Identity, CancellationToken.None);

        var vm = NewAccess($"vm-{Guid.NewGuid():N}");
        foreach (var host in hosts.Take(3)) await host.GrantAsync(volumeId, vm.Identity, vm.Psk, CancellationToken.None);
        var marker = $"KRAUD-PLAINTEXT-{Guid.NewGuid():N}";
        // The guest syncs before it reports its sum, then stays up: reading the file updates its atime, and a workload that
        // exits powers its microVM off, writing on the way out. The crash below must find no write in flight, or the
        // replicas could differ in a block the quorum was writing when the host died.
        var spec = QemuFixture.Spec(0, "sh", "-c", $$"""
            printf '%s' '{{marker}}' | dd of=/data/marker bs=512 count=1 conv=fsync 2>/dev/null || echo KRAUD-IO-ERROR marker
            i=0
            while [ $i -lt 48 ]; do
              dd if=/dev/urandom of=/data/blob bs=1M count=1 seek=$i conv=notrunc,fsync 2>/dev/null || { echo KRAUD-IO-ERROR at $i; exit 1; }
              i=$((i+1)); echo "written $i MiB"
            done
            sum=$(sha256sum /data/blob | cut -d' ' -f1)
            sync
            echo "KRAUD-SUM $sum"
            exec sleep 3600
            """) with
        {
            Volumes = [new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, wrapped, [], exports, vm, 2)],
        };
        var key = kek.Unwrap(wrapped);
        await compute.BootAsync(spec, new Dictionary<Guid, byte[]> { [volumeId] = key }, CancellationToken.None);
        await ConsoleUntilAsync(compute, spec.VmId, "written 8 MiB", 120);

        // SIGKILL one storage daemon in the middle of the writes.
        using (var daemon = System.Diagnostics.Process.GetProcessById(hosts[1].DaemonOf(volumeId)!.Value)) daemon.Kill();

        // A replacement on the fourth host, filled by the guest's own QEMU while it writes, then taken into its quorum.
        var spare = await ServeAsync(hosts[3], "s3", volumeId, vm);
        var progress = new List<CopyProgress>();
        var outcome = await compute.ResyncAsync(new ResyncVolumeReplica(Guid.NewGuid(), volumeId, spec.VmId, spare, [exports[0], exports[2]], vm, 2),
            p =>
            {
                progress.Add(p);
                return Task.CompletedTask;
            }, CancellationToken.None);
        Assert.True(outcome.Bytes >= 48L << 20);
        Assert.InRange(outcome.PauseMs, 0, 5_000);
        Assert.Contains(progress, p => p.BytesPerSecond > 0 && p.TotalBytes > 0);

        var console = await ConsoleUntilAsync(compute, spec.VmId, "KRAUD-SUM", 300);
        Assert.DoesNotContain("KRAUD-IO-ERROR", console, StringComparison.Ordinal);
        Assert.DoesNotContain("I/O error", console, StringComparison.Ordinal);
        var sum = console.Split('\n').Single(l => l.Contains(" KRAUD-SUM ", StringComparison.Ordinal)).Split("KRAUD-SUM ")[1].Trim();
        // The compute host crashes right after the guest's last fsync: its QEMU is SIGKILLed, nothing is flushed on the way out.
        await CrashAsync(compute, spec.VmId);

        // Same bytes on the survivors and the replacement; the plaintext is on none of them.
        var replicas = new[] { hosts[0], hosts[2], hosts[3] }.Select(h => File.ReadAllBytes(h.ReplicaFileOf(volumeId))).ToList();
        Assert.Single(replicas.Select(r => Convert.ToHexString(SHA256.HashData(r))).Distinct());
        Assert.All(hosts, h => Assert.DoesNotContain(marker, Encoding.ASCII.GetString(File.ReadAllBytes(h.ReplicaFileOf(volumeId))), StringComparison.Ordinal));

        // Another guest (another compute host's QEMU) over the three reads what the first one wrote before it crashed.
        var reader = NewAccess($"vm-{Guid.NewGuid():N}");
        foreach (var host in new[] { hosts[0], hosts[2], hosts[3] }) await host.GrantAsync(volumeId, reader.Identity, reader.Psk, CancellationToken.None);
        var other = QemuMicroVmDriver.Start(Options("c1"), "c1");
        _drivers.Add(other);
        var read = QemuFixture.Spec(0, "sh", "-c", """
            echo "KRAUD-GOT $(cat /data/marker) $(sha256sum /data/blob | cut -d' ' -f1)"
            """) with
        {
            Volumes = [new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, wrapped, [], [exports[0], exports[2], spare], reader, 2)],
        };
        await other.BootAsync(read, new Dictionary<Guid, byte[]> { [volumeId] = key }, CancellationToken.None);
        Assert.Contains($"KRAUD-GOT {marker} {sum}", await ConsoleUntilAsync(other, read.VmId, "KRAUD-GOT", 120), StringComparison.Ordinal);

        // The first guest's identity is revoked: its key no longer opens anything; neither does no TLS or a made-up key.
        foreach (var host in hosts) await host.RevokeAsync(volumeId, vm.Identity, CancellationToken.None);
        var address = new Kraud.Domain.Volumes.ExportAddress(exports[0].Address, exports[0].Port);
        Assert.True(await NbdProbe.ReadAsync(address, reader.Identity, reader.Psk));
        Assert.False(await NbdProbe.ReadAsync(address, vm.Identity, vm.Psk));
        Assert.False(await NbdProbe.ReadAsync(address, null, null));
        Assert.False(await NbdProbe.ReadAsync(address, reader.Identity, NewAccess("x").Psk));
    }

    [Fact]
    public async Task a_replacement_is_refused_when_the_replica_the_guest_reads_from_differs_from_its_peers_although_the_copy_agrees_with_it()
    {
        var volume = await FormattedAsync();
        var (volumeId, hosts, _, exports, _, compute, _) = volume;
        var (vm, spec) = await ReadyGuestAsync(volume, """
            dd if=/dev/urandom of=/data/blob bs=1M count=4 conv=fsync 2>/dev/null && sync && echo KRAUD-READY
            exec sleep 3600
            """);

        // The first child's file loses 64 KiB to rot behind its daemon's back: its peers do not hold these bytes. The guest's
        // quorum reads from that child, so the mirror copies the rot into the new replica, which then agrees with it.
        var rotten = hosts[0].ReplicaFileOf(volumeId);
        await ReplicaRot.WriteAsync(rotten, ReplicaRot.At(rotten, 1, 2), 64 << 10);

        var spare = await ServeAsync(hosts[3], "s3", volumeId, vm);
        var refused = await Assert.ThrowsAsync<ResyncException>(() =>
            compute.ResyncAsync(new ResyncVolumeReplica(Guid.NewGuid(), volumeId, spec.VmId, spare, exports, vm, 2), _ => Task.CompletedTask,
                CancellationToken.None));
        Assert.Contains("differ", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_scrub_without_a_guest_reads_no_faster_than_its_bound_names_the_replica_the_majority_outvotes_and_where_and_finds_nothing_in_equal_replicas()
    {
        var (volumeId, hosts, worker, exports, _, compute, _) = await FormattedAsync();
        compute.Options.ScrubBytesPerSecond = 16L << 20;
        var scrubber = new VolumeWorker(compute.Options, compute.HostDirectory, NullLogger.Instance);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var clean = await scrubber.ScrubAsync(new ScrubVolumeReplicas(Guid.NewGuid(), volumeId, null, exports, worker), CancellationToken.None);
        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
        Assert.Empty(clean.Bad);
        Assert.Null(clean.Unresolved);
        Assert.True(clean.Bytes >= 64L << 20);
        // Fleet:Qemu:ScrubBytesPerSecond bounds the read (QEMU's rate limit lets one time slice through ahead of it).
        Assert.True(clean.Bytes / seconds <= 1.2 * (16L << 20), $"{clean.Bytes} bytes were scrubbed in {seconds:F1} s, faster than 16 MiB/s");

        var rotten = hosts[1].ReplicaFileOf(volumeId);
        var at = await ReplicaRot.WriteAsync(rotten, ReplicaRot.At(rotten, 1, 2), 64 << 10);
        var found = await scrubber.ScrubAsync(new ScrubVolumeReplicas(Guid.NewGuid(), volumeId, null, exports, worker), CancellationToken.None);
        var bad = Assert.Single(found.Bad);
        Assert.Equal(exports[1].HostId, bad.ReplicaHostId);
        Assert.InRange(bad.Offset, at - bad.Length + 1, at + (64 << 10) - 1);
        Assert.Contains("outvoted", bad.Detail, StringComparison.Ordinal);
        Assert.Null(found.Unresolved);
    }

    [Fact]
    public async Task a_scrub_of_two_copies_that_differ_names_neither_and_reads_on_to_the_end_counting_every_extent_no_majority_decides_and_naming_the_first()
    {
        var (volumeId, hosts, worker, exports, _, compute, _) = await FormattedAsync();
        var red = exports.Take(2).ToList(); // a RED volume's two copies
        var rotten = hosts[1].ReplicaFileOf(volumeId);
        // Ten stretches of 64 KiB, a cluster of QEMU's backup job each, spread over the volume: more than a scrub names one by one.
        const int cluster = 64 << 10;
        var stretches = Enumerable.Range(1, 10).Select(i => ReplicaRot.At(rotten, i, 11) / cluster * cluster).ToList();
        foreach (var at in stretches) await ReplicaRot.WriteAsync(rotten, at, cluster);
        var found = await new VolumeWorker(compute.Options, compute.HostDirectory, NullLogger.Instance)
            .ScrubAsync(new ScrubVolumeReplicas(Guid.NewGuid(), volumeId, null, red, worker), CancellationToken.None);
        Assert.Empty(found.Bad);
        Assert.Equal(new FileInfo(rotten).Length, found.Bytes); // read to the end, past every difference
        Assert.Equal(10, found.UndecidedExtents);
        Assert.Equal(ScrubFindings.UndecidedShown, found.Undecided.Count);
        // Each extent is the request that failed (QEMU reads up to 1 MiB at a time) around its stretch.
        foreach (var (extent, at) in found.Undecided.Zip(stretches))
        {
            Assert.InRange(at, extent.Offset, extent.End - cluster);
            Assert.InRange(extent.Length, cluster, 2L << 20);
        }
        Assert.InRange(found.UndecidedBytes, 10L * cluster, 20L << 20);
        Assert.Contains("no majority of the replicas agrees on 10 extents", found.Unresolved, StringComparison.Ordinal);
        Assert.Contains($"at byte {found.Undecided[0].Offset} (", found.Unresolved, StringComparison.Ordinal);
        Assert.EndsWith("and 2 more", found.Unresolved, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_scrub_of_two_copies_names_the_one_that_fails_a_read_with_an_io_error_and_finds_no_difference_there()
    {
        var (volumeId, hosts, worker, exports, _, compute, _) = await FormattedAsync();
        var red = exports.Take(2).ToList();
        // Both copies hold the same 64 KiB half way (a scrub reads only what a copy holds: both sparse there is zeroes, read
        // from neither), and then the first copy's disk fails reads of a block of it (its daemon and connection stay up).
        var at = ReplicaRot.At(hosts[0].ReplicaFileOf(volumeId), 1, 2) / 65536 * 65536;
        var data = RandomNumberGenerator.GetBytes(64 << 10);
        foreach (var host in hosts.Take(2))
        {
            await using var file = new FileStream(host.ReplicaFileOf(volumeId), FileMode.Open, FileAccess.Write);
            file.Position = at;
            await file.WriteAsync(data);
        }
        at += 4096;
        await ReplicaReadErrors.InjectAsync(hosts[0], volumeId, worker.Identity, at);
        var found = await new VolumeWorker(compute.Options, compute.HostDirectory, NullLogger.Instance)
            .ScrubAsync(new ScrubVolumeReplicas(Guid.NewGuid(), volumeId, null, red, worker), CancellationToken.None);
        Assert.True(found.Bad.Count == 1, $"bad: {string.Join("; ", found.Bad)}; unresolved: {found.Unresolved}");
        var bad = found.Bad[0];
        Assert.Equal(exports[0].HostId, bad.ReplicaHostId);
        // Where: the failed read dropped the copy's connection, and every read in flight on it failed at that moment, in no
        // set order; QEMU sends the first report at once and holds the others back (one a second), so the stretch named is
        // one of the reads in flight, not always the one the disk failed (ci64: 1 MiB past it).
        Assert.True(bad.Offset <= at + (4 << 20) && at < bad.Offset + bad.Length + (4 << 20),
            $"{at} is not within the reads in flight around the stretch named, {bad.Offset} + {bad.Length}");
        Assert.Contains("read failed", bad.Detail, StringComparison.Ordinal);
        Assert.Null(found.Unresolved); // a copy that cannot be read is no difference of content: the other is the data
        // The failed read cost the copy its connection (QEMU 7.2's NBD server drops the client): the scrub stops there, as
        // nothing is left to compare the other copy with; the replacement's check compares the rest.
        // Reads in flight beside the failed one failed with it, and the stretch named (where the scrub says it stopped) may be
        // one of them, before or past the block the disk failed.
        Assert.InRange(found.Bytes, at - (4 << 20), at + (4 << 20));
    }

    [Fact]
    public async Task a_guest_whose_volume_key_does_not_open_the_volume_fails_its_boot_at_once_with_qemus_own_reason_and_leaves_no_qemu()
    {
        var volume = await FormattedAsync();
        var (volumeId, _, _, exports, kek, compute, wrapped) = volume;
        var vm = await GuestAccessAsync(volume, 3);
        var spec = QemuFixture.Spec(0, "true") with { Volumes = [new VolumeAttachmentSpec(volumeId, "BLOCK", "/data", false, 1, wrapped, [], exports, vm, 2)] };
        var wrongKey = RandomNumberGenerator.GetBytes(kek.Unwrap(wrapped).Length);

        var booting = System.Diagnostics.Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<MicroVmBootException>(() =>
            compute.BootAsync(spec, new Dictionary<Guid, byte[]> { [volumeId] = wrongKey }, CancellationToken.None));
        Assert.Contains("QEMU exited with code 1", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Invalid password", refused.Message, StringComparison.Ordinal); // QEMU's LUKS layer, in its own words
        Assert.True(booting.Elapsed < TimeSpan.FromSeconds(10), $"the boot failed after {booting.Elapsed.TotalSeconds:F1} s");
        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
    }

    [Fact]
    public async Task a_red_volume_whose_copy_fails_reads_serves_them_from_the_other_without_an_error_names_it_and_a_replacement_filled_from_the_other_equals_it()
    {
        var volume = await FormattedAsync();
        var (volumeId, hosts, _, exports, kek, compute, wrapped) = volume;
        var reports = new System.Collections.Concurrent.ConcurrentQueue<QuorumReport>();
        compute.ReplicaReportedBad += reports.Enqueue;
        var vm = await GuestAccessAsync(volume, 2);
        // Every read of the first copy (the one a fifo quorum reads) fails with an I/O error: a disk gone bad, its daemon up.
        await ReplicaReadErrors.InjectAsync(hosts[0], volumeId, vm.Identity);
        var spec = RedGuest(volume, vm, """
            dd if=/dev/urandom of=/tmp/blob bs=1M count=4 2>/dev/null
            want=$(sha256sum /tmp/blob | cut -d' ' -f1)
            cp /tmp/blob /data/blob && sync || echo KRAUD-IO-ERROR write
            echo 3 > /proc/sys/vm/drop_caches
            got=$(sha256sum /data/blob | cut -d' ' -f1) || echo KRAUD-IO-ERROR read
            sync
            echo "KRAUD-SUM $want $got"
            exec sleep 3600
            """);
        await compute.BootAsync(spec, new Dictionary<Guid, byte[]> { [volumeId] = kek.Unwrap(wrapped) }, CancellationToken.None);
        var console = await ConsoleUntilAsync(compute, spec.VmId, "KRAUD-SUM", 180);
        Assert.DoesNotContain("KRAUD-IO-ERROR", console, StringComparison.Ordinal);
        Assert.DoesNotContain("I/O error", console, StringComparison.Ordinal);
        var sums = console.Split('\n').Single(l => l.Contains(" KRAUD-SUM ", StringComparison.Ordinal)).Split("KRAUD-SUM ")[1].Trim().Split(' ');
        Assert.Equal(sums[0], sums[1]); // read back from the other copy, byte for byte what was written

        // The guest's quorum named the failing copy with its error (and took it out: the control plane replaces it).
        var named = await Eventually.Get(() => Task.FromResult(reports.ToList()), r => r.Count > 0, TimeSpan.FromSeconds(30), "the quorum reports the copy bad");
        Assert.All(named, r => Assert.Equal((spec.VmId, volumeId, exports[0].HostId), (r.VmId, r.VolumeId, r.Fault.ReplicaHostId)));
        Assert.Contains("failed: Input/output error", named[0].Fault.Detail, StringComparison.Ordinal);

        // The replacement on a spare host is filled from the copy that reads, checked against it and taken into the quorum.
        var spare = await ServeAsync(hosts[3], "s3", volumeId, vm);
        var outcome = await compute.ResyncAsync(new ResyncVolumeReplica(Guid.NewGuid(), volumeId, spec.VmId, spare, [exports[1]], vm, 1),
            _ => Task.CompletedTask, CancellationToken.None);
        Assert.True(outcome.Bytes > 4L << 20);
        await CrashAsync(compute, spec.VmId);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(hosts[1].ReplicaFileOf(volumeId))), SHA256.HashData(File.ReadAllBytes(hosts[3].ReplicaFileOf(volumeId))));
    }

    /// <summary>
    /// QEMU 7.2's NBD client reconnects on its own after a connection dropped (reconnect-delay 0 only keeps requests from
    /// waiting for it), so a copy that missed writes while it was away comes back into the guest's quorum; with fifo reads
    /// it is asked first, and it answers the blocks it missed with what it held before (here: never written, a hole). How
    /// soon the host runtime hears of the failure must not matter: here it is scrubbing the volume meanwhile (the other
    /// copy, over connections of its own, for tens of seconds), which kept it from taking a failed child out until the
    /// scrub ended.
    /// </summary>
    [Fact]
    public async Task a_red_copy_that_loses_its_connection_while_the_guest_writes_never_serves_the_blocks_it_missed_even_while_a_scrub_runs_is_named_and_a_resync_brings_it_back_equal()
    {
        var volume = await FormattedAsync();
        var (volumeId, hosts, _, exports, kek, compute, wrapped) = volume;
        var reports = new System.Collections.Concurrent.ConcurrentQueue<QuorumReport>();
        compute.ReplicaReportedBad += reports.Enqueue;
        var pauses = new System.Collections.Concurrent.ConcurrentQueue<FailedWritePause>();
        compute.GuestWentOnAfterFailedWrite += pauses.Enqueue;
        var vm = await GuestAccessAsync(volume, 2);
        // 16 MiB written one MiB at a time, each synced; the first copy (the one a fifo quorum reads) is cut off during
        // the writes for 1.5 s (its export gone: its client's reconnects fail meanwhile) and served again before they end.
        // Then every MiB is read back from the volume, past the guest's cache.
        // The first copy's client is connected again 8 s after the writes (it retries after 1, then 2 s).
        var spec = RedGuest(volume, vm, SyncedWritesReadBack(beforeWrites: "", settleSeconds: 8));
        await compute.BootAsync(spec, new Dictionary<Guid, byte[]> { [volumeId] = kek.Unwrap(wrapped) }, CancellationToken.None);
        await ConsoleUntilAsync(compute, spec.VmId, "written 3 MiB", 120);
        compute.Options.ScrubBytesPerSecond = 2L << 20;
        var scrub = compute.ScrubAsync(new ScrubVolumeReplicas(Guid.NewGuid(), volumeId, spec.VmId, [exports[1]], vm), CancellationToken.None);
        await Eventually.Until(() => Task.FromResult(ReplicaConnections.PeersOf(hosts[1].DaemonOf(volumeId)!.Value).Count == 2), TimeSpan.FromSeconds(30),
            "the scrub reads the other copy");
        await ReplicaConnections.CutAsync(hosts[0], volumeId, vm.Identity, TimeSpan.FromSeconds(1.5));

        await AssertEveryMiBReadBackRightAsync(compute, spec.VmId, 240);

        // The guest's quorum named the copy that missed writes.
        var named = await Eventually.Get(() => Task.FromResult(reports.ToList()), r => r.Count > 0, TimeSpan.FromSeconds(30), "the quorum reports the copy bad");
        Assert.All(named, r => Assert.Equal((spec.VmId, volumeId, exports[0].HostId), (r.VmId, r.VolumeId, r.Fault.ReplicaHostId)));
        // Where the copy failed a write, the guest stopped on it until the copy was out (where it failed a read first, it was
        // out before a write reached it, and the guest never stopped): what that cost.
        foreach (var pause in pauses) output.WriteLine($"the guest was stopped {pause.Milliseconds:F0} ms on a write the cut copy failed (BLOCK_IO_ERROR to cont)");

        await scrub;

        // A resync onto the same copy fills in what it missed: afterwards both copies hold the same bytes.
        var outcome = await compute.ResyncAsync(new ResyncVolumeReplica(Guid.NewGuid(), volumeId, spec.VmId, exports[0], [exports[1]], vm, 1),
            _ => Task.CompletedTask, CancellationToken.None);
        Assert.True(outcome.Bytes > 16L << 20);
        await CrashAsync(compute, spec.VmId);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(hosts[1].ReplicaFileOf(volumeId))), SHA256.HashData(File.ReadAllBytes(hosts[0].ReplicaFileOf(volumeId))));
    }

    /// <summary>
    /// A guest booted while one RED copy is down has a stand-in for it in its quorum, so once a resync brings that copy in,
    /// the quorum's vote threshold (fixed when QEMU opens it) counts both copies. Booted with the one copy's threshold, the
    /// guest went on when the other copy failed a write (the resynced one alone acknowledged it), and the failed copy, which
    /// reconnects on its own and is read first, answered with the blocks it missed until the host runtime took it out. Here
    /// the runtime is late: its handler of the quorum's report stays busy until the guest has read everything back (or 20
    /// s), so only the threshold can keep those reads right.
    /// </summary>
    [Fact]
    public async Task a_guest_booted_with_a_red_copy_down_counts_that_copy_in_every_write_once_a_resync_brings_it_in_so_a_cut_of_the_other_copy_loses_or_misreads_nothing_while_the_host_runtime_is_late()
    {
        var volume = await FormattedAsync();
        var (volumeId, hosts, _, exports, kek, compute, wrapped) = volume;
        var reports = new System.Collections.Concurrent.ConcurrentQueue<QuorumReport>();
        var pauses = new System.Collections.Concurrent.ConcurrentQueue<FailedWritePause>();
        compute.ReplicaReportedBad += r =>
        {
            reports.Enqueue(r);
            // Raised on the watcher's thread, before the runtime takes the copy out or hears of the guest's stop.
            var busy = System.Diagnostics.Stopwatch.StartNew();
            while (busy.Elapsed < TimeSpan.FromSeconds(20) && !OutputOf(compute, r.VmId).GetAwaiter().GetResult().Contains("KRAUD-CHECKED", StringComparison.Ordinal))
                Thread.Sleep(200);
        };
        compute.GuestWentOnAfterFailedWrite += pauses.Enqueue;
        var vm = await GuestAccessAsync(volume, 2);
        // The guest waits while the spec resyncs the copy that was down; then as in the spec above: 16 MiB one synced MiB at
        // a time, the other copy (the quorum's first child, which fifo reads ask first) cut off for 1.5 s meanwhile, and
        // every MiB read back past the guest's cache.
        var spec = QemuFixture.Spec(0, "sh", "-c", SyncedWritesReadBack(beforeWrites: "echo KRAUD-READY; sleep 30", settleSeconds: 4)) with
        {
            // The first copy is down at boot: the guest gets the second one's export only, and knows that the volume keeps two.
            Volumes = [new VolumeAttachmentSpec(volumeId, "RED", "/data", false, 1, wrapped, [], [exports[1]], vm, 1, Replicas: 2)],
        };
        await compute.BootAsync(spec, new Dictionary<Guid, byte[]> { [volumeId] = kek.Unwrap(wrapped) }, CancellationToken.None);
        await ConsoleUntilAsync(compute, spec.VmId, "KRAUD-READY", 120);

        // The first copy is back and resynced into the running guest's quorum.
        await compute.ResyncAsync(new ResyncVolumeReplica(Guid.NewGuid(), volumeId, spec.VmId, exports[0], [exports[1]], vm, 1),
            _ => Task.CompletedTask, CancellationToken.None);
        Assert.DoesNotContain("written 1 MiB", await OutputOf(compute, spec.VmId), StringComparison.Ordinal); // the resync ended before the writes began

        await ConsoleUntilAsync(compute, spec.VmId, "written 3 MiB", 120);
        await ReplicaConnections.CutAsync(hosts[1], volumeId, vm.Identity, TimeSpan.FromSeconds(1.5));

        await AssertEveryMiBReadBackRightAsync(compute, spec.VmId, 300);

        // The cut copy was named; the guest stopped on the write it failed until the (late) runtime had taken it out.
        var named = await Eventually.Get(() => Task.FromResult(reports.ToList()), r => r.Count > 0, TimeSpan.FromSeconds(30), "the quorum reports the copy bad");
        Assert.All(named, r => Assert.Equal((spec.VmId, volumeId, exports[1].HostId), (r.VmId, r.VolumeId, r.Fault.ReplicaHostId)));
        Assert.NotEmpty(pauses);
        foreach (var pause in pauses) output.WriteLine($"the guest was stopped {pause.Milliseconds:F0} ms on a write the cut copy failed, the host runtime late by up to 20 s");
    }

    [Fact]
    public async Task beside_a_guest_that_keeps_writing_a_scrub_names_only_the_rotten_replica_and_drops_it_and_a_replica_that_fails_a_write_is_reported()
    {
        var volume = await FormattedAsync();
        var (volumeId, hosts, _, exports, _, compute, _) = volume;
        var reports = new System.Collections.Concurrent.ConcurrentQueue<QuorumReport>();
        compute.ReplicaReportedBad += reports.Enqueue;
        var pauses = new System.Collections.Concurrent.ConcurrentQueue<FailedWritePause>();
        compute.GuestWentOnAfterFailedWrite += pauses.Enqueue;
        // The guest writes all the time (64 KiB and an fsync, five times a second): blocks in flight must not count as rot.
        var (vm, spec) = await ReadyGuestAsync(volume, """
            dd if=/dev/urandom of=/data/blob bs=1M count=4 conv=fsync 2>/dev/null && sync && echo KRAUD-READY
            i=0
            while true; do
              dd if=/dev/urandom of=/data/churn bs=64k count=1 seek=$((i % 64)) conv=notrunc,fsync 2>/dev/null || echo "KRAUD-IO-ERROR $i"
              i=$((i+1)); sleep 0.2
            done
            """);

        // The first child (the one the guest reads) rots behind its daemon's back.
        var rotten = hosts[0].ReplicaFileOf(volumeId);
        var at = await ReplicaRot.WriteAsync(rotten, ReplicaRot.At(rotten, 3, 4), 64 << 10);
        var found = await compute.ScrubAsync(new ScrubVolumeReplicas(Guid.NewGuid(), volumeId, spec.VmId, exports, vm), CancellationToken.None);
        var bad = Assert.Single(found.Bad);
        Assert.Equal(exports[0].HostId, bad.ReplicaHostId);
        Assert.InRange(bad.Offset, at - bad.Length + 1, at + (64 << 10) - 1);
        Assert.Empty(reports); // the guest's own quorum read nothing that failed

        // Out of the guest's quorum: its writes reach the other two only, so the rotten file no longer changes.
        var before = SHA256.HashData(File.ReadAllBytes(rotten));
        await Task.Delay(3000);
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(rotten)));

        // A replica whose daemon dies fails the guest's next write there: the quorum's report names it.
        using (var daemon = System.Diagnostics.Process.GetProcessById(hosts[1].DaemonOf(volumeId)!.Value)) daemon.Kill();
        var failed = await Eventually.Get(() => Task.FromResult(reports.ToList()), r => r.Count > 0, TimeSpan.FromSeconds(60), "the quorum reports a replica bad");
        Assert.All(failed, r => Assert.Equal((spec.VmId, volumeId, exports[1].HostId), (r.VmId, r.VolumeId, r.Fault.ReplicaHostId)));
        Assert.Contains("failed", failed[0].Fault.Detail, StringComparison.Ordinal);
        // The guest stopped on that write until the replica was out, and went on: what that cost it.
        var stops = await Eventually.Get(() => Task.FromResult(pauses.ToList()), p => p.Count > 0, TimeSpan.FromSeconds(30), "the guest goes on after the failed write");
        foreach (var pause in stops) output.WriteLine($"the guest was stopped {pause.Milliseconds:F0} ms on a write the killed replica failed (BLOCK_IO_ERROR to cont)");
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var driver in _drivers) await driver.DisposeAsync();
        foreach (var storage in _storage) await storage.DisposeAsync();
        StateDirectories.Remove(_root);
    }
}
