using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kraud.Api.Volumes;
using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Volumes;
using Kraud.Tests.Infrastructure;
using Marten;

namespace Kraud.Tests.Api;

/// <summary>
/// One zone of real hosts for the volume specs: two qemu-microvm compute host processes, shared by the specs of the class
/// (booted once, in parallel); each spec starts the storage host processes it may kill.
/// </summary>
public sealed class BlockZoneFixture : IAsyncLifetime
{
    private readonly List<(HostProcess Host, string State)> _storage = [];
    private ProcessFleetApp _app = null!;

    public string Zone { get; } = $"blk-{Guid.NewGuid():N}"[..12];
    public List<(HostProcess Host, string State)> Compute { get; } = [];

    /// <summary>Every host process of the zone now: its compute hosts and the storage hosts of the spec running.</summary>
    public IEnumerable<HostProcess> Hosts => Compute.Concat(_storage).Select(h => h.Host);

    public static string NewState() => Path.Combine(Path.GetTempPath(), $"kraud-blk-{Guid.NewGuid():N}"[..26]);

    public async Task StartAsync(ProcessFleetApp app)
    {
        if (Compute.Count > 0) return;
        _app = app;
        for (var i = 0; i < 2; i++)
        {
            var state = NewState();
            Compute.Add((HostProcess.Start(app, $"c{i}-{Guid.NewGuid():N}"[..10], Zone, driver: "qemu-microvm", environment: Qemu(state)), state));
        }
        await Task.WhenAll(Compute.Select(c => c.Host.WaitUntilRegisteredAsync(app)));
    }

    /// <summary>Storage host processes of this zone whose replicas live under their own state directories.</summary>
    public async Task<List<(HostProcess Host, string State)>> StartStorageAsync(int count)
    {
        var started = Enumerable.Range(0, count).Select(_ =>
        {
            var state = NewState();
            return (HostProcess.Start(_app, $"s-{Guid.NewGuid():N}"[..10], Zone, role: "Storage", nvmeGiB: 100, driver: "qemu-microvm",
                environment: Qemu(state)), state);
        }).ToList();
        _storage.AddRange(started);
        await Task.WhenAll(started.Select(s => s.Item1.WaitUntilRegisteredAsync(_app)));
        return started;
    }

    /// <summary>
    /// Kills a spec's storage hosts and removes their state once the spec is done: a storage host left serving in the shared
    /// zone would be the emptiest place for the next spec's replacement replicas, and that spec expects its own host there.
    /// </summary>
    public async Task RetireAsync(IEnumerable<(HostProcess Host, string State)> hosts)
    {
        foreach (var (host, state) in hosts.ToList())
        {
            _storage.RemoveAll(s => s.Host == host);
            await host.DisposeAsync();
            StateDirectories.Remove(state);
        }
    }

    private static Dictionary<string, string> Qemu(string state) => new()
    {
        ["Fleet__Qemu__StateDirectory"] = state,
        ["Fleet__Qemu__GuestDirectory"] = QemuFixture.GuestDirectory,
        ["Fleet__Qemu__MaxMemoryMiB"] = "256",
        ["Fleet__Qemu__MaxCpus"] = "1",
        ["Fleet__Qemu__MaxEphemeralMiB"] = "64",
        // 1 GiB volumes become 96 MiB replicas: room for 64 MiB of data, small enough to copy within a test.
        ["Fleet__Qemu__MaxVolumeMiB"] = "96",
    };

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var (host, state) in Compute.Concat(_storage))
        {
            await host.DisposeAsync();
            StateDirectories.Remove(state);
        }
    }
}

[Collection(ProcessFleetCollection.Name)]
public sealed class BlockVolumeSpecs(ProcessFleetApp app, BlockZoneFixture zone) : IClassFixture<BlockZoneFixture>, IClassFixture<QemuFixture>
{
    /// <summary>
    /// The workload (busybox, the volume mounted at /data by the guest's /init, which makes its file system) writes a
    /// plaintext marker file, 64 MiB of random data in a file, fsyncing each MiB, then the SHA-256 of those 64 MiB, and
    /// stays up: a workload that exits powers its microVM off (and the replica is started again), which would end the
    /// QEMU the online resync runs in.
    /// </summary>
    private static string Writer(string marker) => $$"""
        m='{{marker}}'
        printf '%s%s%s%s' "$m" "$m" "$m" "$m" | dd of=/data/marker bs=512 count=1 conv=fsync 2>/dev/null || { echo KRAUD-IO-ERROR marker; exit 1; }
        i=0
        while [ $i -lt 64 ]; do
          dd if=/dev/urandom of=/data/blob bs=1M count=1 seek=$i conv=notrunc,fsync 2>/dev/null || { echo KRAUD-IO-ERROR at $i; exit 1; }
          i=$((i+1)); echo "written $i MiB"
        done
        sum=$(sha256sum /data/blob | cut -d' ' -f1)
        printf '%s' "$sum" | dd of=/data/sum bs=512 count=1 conv=fsync 2>/dev/null || { echo KRAUD-IO-ERROR sum; exit 1; }
        sync
        echo "KRAUD-SUM $sum"
        exec sleep 3600
        """;

    private const string Reader = """
        want=$(cat /data/sum)
        got=$(sha256sum /data/blob | cut -d' ' -f1)
        echo "KRAUD-READBACK want=$want got=$got"
        exec sleep 3600
        """;

    private async Task<JsonElement> CreatePodAsync(TenantScope tenant, string name, string volumeId, string script) =>
        (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
        {
            @in = new
            {
                name, image = "busybox", cpu = 1, memoryMiB = 256, zone = zone.Zone, command = new[] { "sh", "-c", script },
                volumes = new[] { new { volumeId, mountPath = "/data" } },
            },
        })).ShouldSucceed().Data.GetProperty("createPod");

    /// <summary>The guest's output on its host: the console (the kernel, /init, KRAUD-EXIT) and the workload's own log.</summary>
    private sealed record GuestOutput(string Console, string Workload)
    {
        public async Task<string> ReadAsync() =>
            (File.Exists(Console) ? await File.ReadAllTextAsync(Console) : "") + (File.Exists(Workload) ? await File.ReadAllTextAsync(Workload) : "");
    }

    private async Task<(Guid VmId, string HostId, GuestOutput Output)> RunningAsync(TenantScope tenant, string podId)
    {
        var running = await tenant.WaitForPodAsync(podId, "RUNNING", seconds: 180);
        var instance = Assert.Single(running.Instances());
        var hostId = instance.GetProperty("hostId").GetString()!;
        var (host, state) = zone.Compute.Single(c => c.Host.Id.ToString() == hostId);
        var vmId = Guid.Parse(instance.Id());
        var hostDirectory = Path.Combine(state, "hosts", host.Name);
        return (vmId, hostId, new GuestOutput(Path.Combine(hostDirectory, "console", $"{vmId}.log"), Path.Combine(hostDirectory, "logs", $"{vmId}.log")));
    }

    private static async Task<string> ConsoleUntilAsync(GuestOutput output, string what, int seconds) =>
        await Eventually.Get(output.ReadAsync, c => c.Contains(what) || c.Contains("KRAUD-EXIT"), TimeSpan.FromSeconds(seconds), $"the guest printed {what}");

    private async Task<List<object>> EventsOf(string id) => (await app.EventsOf(Guid.Parse(id))).Select(e => e.Data).ToList();

    /// <summary>Reads the stream's events, and again after each commit to it, until <paramref name="done"/>.</summary>
    private Task<List<object>> EventsUntilAsync(string id, Func<List<object>, bool> done, TimeSpan timeout, string what) =>
        app.StreamCommits.UntilAsync(Guid.Parse(id), () => EventsOf(id), done, timeout, what);

    /// <summary>
    /// A spec's part of the zone: the storage hosts it started, a tenant of its own, and the pods and volumes it makes, which go
    /// when it ends, whether it passed or not.
    /// </summary>
    private sealed class Lab(BlockVolumeSpecs specs, TenantScope tenant, List<(HostProcess Host, string State)> storage) : IAsyncDisposable
    {
        public TenantScope Tenant => tenant;
        public List<(HostProcess Host, string State)> Storage => storage;
        public List<string> Pods { get; } = [];
        public List<string> Volumes { get; } = [];

        public async ValueTask DisposeAsync() => await specs.CleanUpAsync(tenant, Pods, Volumes, storage);
    }

    private async Task<Lab> LabAsync(int storageHosts)
    {
        await zone.StartAsync(app);
        var storage = await zone.StartStorageAsync(storageHosts);
        return new Lab(this, await TenantScope.CreateAsync(app), storage);
    }

    /// <summary>A volume of the lab's tenant in the zone, once it is HEALTHY.</summary>
    private async Task<(string Id, JsonElement Volume)> HealthyVolumeAsync(Lab lab, string name, string kind)
    {
        var id = (await lab.Tenant.CreateVolumeAsync(name, kind, 1, zone.Zone)).Id();
        lab.Volumes.Add(id);
        return (id, await HealthyAsync(lab.Tenant, id));
    }

    /// <summary>A pod of the lab that mounts the volume at /data and runs <paramref name="script"/>, once it runs.</summary>
    private async Task<(string PodId, Guid VmId, string HostId, GuestOutput Output)> RunPodAsync(Lab lab, string name, string volumeId, string script)
    {
        var pod = (await CreatePodAsync(lab.Tenant, name, volumeId, script)).Id();
        lab.Pods.Add(pod);
        var (vmId, hostId, output) = await RunningAsync(lab.Tenant, pod);
        return (pod, vmId, hostId, output);
    }

    /// <summary>The checksum <see cref="Writer"/> printed (its log is in CRI format: time, stream, F, the line).</summary>
    private static string SumOf(string output) =>
        output.Split('\n').Single(l => l.Contains(" KRAUD-SUM ", StringComparison.Ordinal)).Split("KRAUD-SUM ")[1].Trim();

    /// <summary>What a spec made goes, whether it passed or not: its pods (their guests), its volumes, then its storage hosts.</summary>
    private async Task CleanUpAsync(TenantScope tenant, IEnumerable<string> podIds, IEnumerable<string> volumeIds, List<(HostProcess Host, string State)> storage)
    {
        foreach (var podId in podIds) await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = podId });
        foreach (var podId in podIds)
        {
            try
            {
                await tenant.WaitForPodAsync(podId, "STOPPED", seconds: 60);
            }
            catch (TimeoutException)
            {
                // A guest that does not stop in time is the compute host's to kill; the storage hosts go anyway.
            }
        }
        foreach (var volumeId in volumeIds) await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = volumeId });
        await zone.RetireAsync(storage);
    }

    /// <summary>
    /// Waits until the volume is HEALTHY. If it is not, the failure names where it stopped: the volume's events, what the
    /// zone's hosts last wrote (its format and its copies run on a compute host, its replicas on storage hosts, and the test
    /// process keeps only their output), and where each command to them is (outbox, queue table, inbox, dead letters).
    /// </summary>
    private async Task<JsonElement> HealthyAsync(TenantScope tenant, string volumeId)
    {
        try
        {
            return await tenant.WaitForVolumeAsync(volumeId, "HEALTHY", 180);
        }
        catch (TimeoutException e)
        {
            var events = (await app.EventsOf(Guid.Parse(volumeId))).Select(x => $"\n  {x.Version} {x.Timestamp:HH:mm:ss.fff} {x.EventTypeName} {JsonSerializer.Serialize(x.Data)}");
            var envelopes = await EnvelopeTables.DescribeAsync(app.ConnectionString, zone.Hosts.Select(h => h.Name));
            throw new TimeoutException(e.Message + "\n--- events of the volume:" + string.Concat(events)
                                       + string.Concat(zone.Hosts.Select(h => $"\n--- host {h.Name}:\n{h.OutputTail()}")) + envelopes, e);
        }
    }

    private static string ReplicaFile(string state, HostProcess host, string volumeId) =>
        Path.Combine(state, "hosts", host.Name, "replicas", volumeId, "data.raw");

    [Fact]
    public async Task a_block_volume_keeps_its_bytes_on_three_storage_hosts_through_a_storage_host_killed_mid_write_and_a_pod_moved_to_another_compute_host()
    {
        await using var lab = await LabAsync(4);
        var (tenant, storage) = (lab.Tenant, lab.Storage);
        var (volumeId, volume) = await HealthyVolumeAsync(lab, "blk", "BLOCK");
        Assert.True(volume.GetProperty("encrypted").GetBoolean());
        var replicas = volume.ReplicaHosts();
        Assert.Equal(3, replicas.Count);
        // The key was made on a compute host: no storage host was ever sent one, not even wrapped.
        var created = Assert.Single((await EventsOf(volumeId)).OfType<VolumeKeyCreated>());
        Assert.Contains(zone.Compute, c => c.Host.Id == created.HostId);

        var marker = $"KRAUD-PLAINTEXT-{Guid.NewGuid():N}";
        var (writer, vmId, firstHost, console) = await RunPodAsync(lab, "writer", volumeId, Writer(marker));
        await ConsoleUntilAsync(console, "written 16 MiB", 180);

        // SIGKILL a storage host holding a replica (its runtime and its storage daemons) while the guest writes.
        var victim = storage.Single(s => s.Host.Id.ToString() == replicas[0]);
        await victim.Host.KillAsync();
        var done = await ConsoleUntilAsync(console, "KRAUD-SUM", 300);
        Assert.DoesNotContain("KRAUD-IO-ERROR", done);
        Assert.DoesNotContain("I/O error", done);
        Assert.DoesNotContain("KRAUD-EXIT", done); // the script ran to its end: an error would have exited it
        var sum = SumOf(done);

        // The lost replica is replaced on the spare storage host, filled while the guest runs, and healthy only once equal.
        var spare = storage.Single(s => !replicas.Contains(s.Host.Id.ToString()));
        var healed = await app.StreamCommits.UntilAsync(Guid.Parse(volumeId), async () => (await tenant.Gql(
                "query($id: ID!) { volume(id: $id) { state replicas { hostId state syncedBytes totalBytes } } }", new { id = volumeId }))
            .ShouldSucceed().Data.GetProperty("volume"),
            v => v.State() == "HEALTHY" && v.ReplicaHosts().Contains(spare.Host.Id.ToString()), TimeSpan.FromSeconds(240), "the volume is HEALTHY on the spare");
        var rebuilt = healed.GetProperty("replicas").EnumerateArray().Single(r => r.GetProperty("hostId").GetString() == spare.Host.Id.ToString());
        Assert.True(rebuilt.GetProperty("totalBytes").GetDouble() >= 64 << 20);
        Assert.Equal(rebuilt.GetProperty("totalBytes").GetDouble(), rebuilt.GetProperty("syncedBytes").GetDouble());
        var events = await EventsOf(volumeId);
        var started = Assert.Single(events.OfType<VolumeReplicaResyncStarted>());
        Assert.Equal(vmId, started.VmId); // online: in the QEMU of the guest that writes
        Assert.Contains(events.OfType<VolumeReplicaResyncProgressed>(), p => p.HostId == spare.Host.Id && p.BytesPerSecond > 0 && p.TotalBytes > 0);
        var resynced = Assert.Single(events.OfType<VolumeReplicaResynced>());
        Assert.InRange(resynced.PauseMs, 0, 5_000);

        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = writer })).ShouldSucceed();
        await tenant.WaitForPodAsync(writer, "STOPPED", seconds: 60);

        // The three replicas hold the same bytes; no file of any storage host holds the plaintext; the compute host keeps none.
        var holders = storage.Where(s => healed.ReplicaHosts().Contains(s.Host.Id.ToString())).ToList();
        var digests = holders.Select(s => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(ReplicaFile(s.State, s.Host, volumeId))))).ToList();
        Assert.Single(digests.Distinct());
        var needle = Encoding.ASCII.GetBytes(marker);
        foreach (var file in storage.SelectMany(s => Directory.EnumerateFiles(s.State, "*", SearchOption.AllDirectories)))
            Assert.False(Contains(File.ReadAllBytes(file), needle), $"{file} holds the plaintext marker");
        // (a compute host that has run nothing yet has no state directory)
        Assert.DoesNotContain(zone.Compute.Where(c => Directory.Exists(c.State)).SelectMany(c => Directory.EnumerateFiles(c.State, "*", SearchOption.AllDirectories)),
            f => f.Contains(volumeId, StringComparison.Ordinal));

        // Re-created on the other compute host, the pod reads what was written before.
        await app.CordonAsync(firstHost);
        try
        {
            var (reader, _, secondHost, readerConsole) = await RunPodAsync(lab, "reader", volumeId, Reader);
            Assert.NotEqual(firstHost, secondHost);
            var read = await ConsoleUntilAsync(readerConsole, "KRAUD-READBACK", 180);
            Assert.Contains($"KRAUD-READBACK want={sum} got={sum}", read);

            // Only the reader's QEMU gets in: no TLS, an unknown key, or the stopped writer's identity are refused.
            await using var session = app.Store.QuerySession();
            var grant = Assert.Single(await session.Query<ExportGrant>().Where(g => g.VolumeId == Guid.Parse(volumeId)).ToListAsync());
            var export = (await session.LoadAsync<VolumeView>(Guid.Parse(volumeId)))!.Volume.Replicas[0].Export!;
            Assert.True(await NbdProbe.ReadAsync(export, grant.Identity, grant.Psk), "the granted client reads");
            Assert.False(await NbdProbe.ReadAsync(export, null, null), "a client without TLS is refused");
            Assert.False(await NbdProbe.ReadAsync(export, grant.Identity, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32))), "a wrong key is refused");
            Assert.False(await NbdProbe.ReadAsync(export, VolumeExportAccess.VmIdentity(vmId), grant.Psk), "the writer's revoked identity is refused");
            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = reader })).ShouldSucceed();
            await tenant.WaitForPodAsync(reader, "STOPPED", seconds: 60);
        }
        finally
        {
            await app.UncordonAsync(firstHost);
        }
    }

    [Fact]
    public async Task a_red_volume_serves_reads_and_writes_with_one_of_its_two_replicas_gone_and_is_repaired_when_a_storage_host_is_back()
    {
        await using var lab = await LabAsync(2);
        var (tenant, storage) = (lab.Tenant, lab.Storage);
        var (volumeId, volume) = await HealthyVolumeAsync(lab, "red", "RED");
        var replicas = volume.ReplicaHosts();
        Assert.Equal(2, replicas.Count);

        // Rounds of write, fsync and a read that bypasses the guest's cache (O_DIRECT), one a second, for as long as the
        // spec needs: it stops the pod once it saw rounds after the repair (the bound only keeps a lost guest from running on).
        const string rounds = """
            i=0
            while [ $i -lt 900 ]; do
              dd if=/dev/urandom of=/tmp/block bs=1M count=1 2>/dev/null
              want=$(sha256sum /tmp/block | cut -d' ' -f1)
              dd if=/tmp/block of=/data/rounds bs=1M count=1 seek=$((i % 32)) oflag=direct conv=notrunc,fsync 2>/dev/null || { echo KRAUD-IO-ERROR write $i; exit 1; }
              got=$(dd if=/data/rounds bs=1M count=1 skip=$((i % 32)) iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
              [ "$want" = "$got" ] || { echo KRAUD-MISMATCH round $i; exit 1; }
              i=$((i+1)); echo "round $i ok"; sleep 1
            done
            """;
        var (pod, _, _, console) = await RunPodAsync(lab, "archiver", volumeId, rounds);
        await ConsoleUntilAsync(console, "round 3 ok", 180);
        async Task<int> RoundsAsync() => (await console.ReadAsync()).Split('\n').Count(l => l.Contains("round ", StringComparison.Ordinal) && l.EndsWith(" ok", StringComparison.Ordinal));

        // With its only peer gone, a RED volume is DEGRADED (not UNAVAILABLE): one copy takes its writes.
        var victim = storage.Single(s => s.Host.Id.ToString() == replicas[1]);
        await victim.Host.KillAsync();
        var degraded = await tenant.WaitForVolumeAsync(volumeId, v => v.State() is "DEGRADED" or "UNAVAILABLE",
            TimeSpan.FromSeconds(60), "the volume lost a replica");
        Assert.Equal("DEGRADED", degraded.State());
        var degradedAt = await RoundsAsync();
        await ConsoleUntilAsync(console, $"round {degradedAt + 3} ok", 120);

        // A storage host is back (a new one in the zone): the replica is placed there, filled from the survivor, taken in.
        var back = Assert.Single(await zone.StartStorageAsync(1));
        storage.Add(back);
        await tenant.WaitForVolumeAsync(volumeId, v => v.State() == "HEALTHY" && v.ReplicaHosts().Contains(back.Host.Id.ToString()),
            TimeSpan.FromSeconds(240), "the volume is HEALTHY again with the new storage host");
        var healedAt = await RoundsAsync();
        var after = await ConsoleUntilAsync(console, $"round {healedAt + 3} ok", 120);
        Assert.DoesNotContain("KRAUD-IO-ERROR", after);
        Assert.DoesNotContain("KRAUD-MISMATCH", after);
        Assert.DoesNotContain("KRAUD-EXIT", after);

        // Stopped (its QEMU finishes the writes it has before it exits), the two replicas hold the same bytes.
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod, "STOPPED", seconds: 60);
        var survivor = storage.Single(s => s.Host.Id.ToString() == replicas[0]);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(ReplicaFile(survivor.State, survivor.Host, volumeId))),
            SHA256.HashData(File.ReadAllBytes(ReplicaFile(back.State, back.Host, volumeId))));
    }

    [Fact]
    public async Task a_block_volume_whose_storage_host_died_before_its_replica_answered_gets_a_replacement_set_up_at_once_and_becomes_healthy()
    {
        await using var lab = await LabAsync(3);
        var (tenant, storage) = (lab.Tenant, lab.Storage);
        // SIGKILLed, a storage host stays READY until its silence is noticed, so the placement below still picks it (a BLOCK
        // volume needs all three hosts of the zone), and its replica never answers while the two others export theirs.
        var dead = storage[0];
        await dead.Host.KillAsync();
        var volumeId = (await tenant.CreateVolumeAsync("window", "BLOCK", 1, zone.Zone)).Id();
        lab.Volumes.Add(volumeId);
        await EventsUntilAsync(volumeId, events => events.OfType<VolumeReplicaScheduled>().Any(e => e.HostId == dead.Host.Id),
            TimeSpan.FromSeconds(30), "a replica is placed on the dead storage host");
        await EventsUntilAsync(volumeId, events => events.OfType<VolumeReplicaExported>().Any(),
            TimeSpan.FromSeconds(60), "a replica on a live storage host serves its export");

        // The dead host's replica is lost (when its silence is noticed) and its replacement placed on the spare once that
        // registers: after the first export and before the format (which waits for every replica to serve). It must be set
        // up at once, not wait for a key that nobody makes before it serves.
        var spare = Assert.Single(await zone.StartStorageAsync(1));
        storage.Add(spare);
        var volume = await HealthyAsync(tenant, volumeId);
        var hosts = volume.ReplicaHosts();
        Assert.Equal(3, hosts.Count);
        Assert.Contains(spare.Host.Id.ToString(), hosts);
        Assert.DoesNotContain(dead.Host.Id.ToString(), hosts);
        var events = await EventsOf(volumeId);
        Assert.Contains(events, e => e is VolumeReplicaLost l && l.HostId == dead.Host.Id || e is VolumeReplicaFailed f && f.HostId == dead.Host.Id);
        // Until the spare came there was no room for a replacement (the zone's other storage hosts hold a copy), so it
        // was placed in the window whenever the dead host was noticed.
        var replaced = events.FindIndex(e => e is VolumeReplicaScheduled r && r.HostId == spare.Host.Id);
        Assert.True(replaced > events.FindIndex(e => e is VolumeReplicaExported), "the replacement was placed after the first export");
        Assert.True(replaced < events.FindIndex(e => e is VolumeFormatStarted), "and before the format");
    }

    [Fact]
    public async Task a_replica_whose_bytes_rot_under_a_running_guest_is_found_by_a_scrub_and_replaced_from_the_two_that_agree_and_the_data_stays_intact()
    {
        await using var lab = await LabAsync(4);
        var (tenant, storage) = (lab.Tenant, lab.Storage);
        var (volumeId, volume) = await HealthyVolumeAsync(lab, "rot", "BLOCK");
        var replicas = volume.ReplicaHosts();
        var (writer, vmId, _, console) = await RunPodAsync(lab, "writer", volumeId, Writer($"KRAUD-PLAINTEXT-{Guid.NewGuid():N}"));
        var written = await ConsoleUntilAsync(console, "KRAUD-SUM", 300);
        Assert.DoesNotContain("KRAUD-EXIT", written);
        var sum = SumOf(written);

        // The replica the guest reads from (its quorum's first child) rots silently: a MiB of its ciphertext, amid the
        // 64 MiB file, changes on the storage host's disk with no I/O error anywhere.
        var rotten = storage.Single(s => s.Host.Id.ToString() == replicas[0]);
        const long at = 40L << 20;
        await ReplicaRot.WriteAsync(ReplicaFile(rotten.State, rotten.Host, volumeId), at, 1 << 20);

        var asked = (await tenant.Gql("mutation($id: ID!) { scrubVolume(id: $id) { scrubRequested } }", new { id = volumeId })).ShouldSucceed();
        Assert.True(asked.Data.GetProperty("scrubVolume").GetProperty("scrubRequested").GetBoolean());

        // The scrub runs in the guest's QEMU (it has the volume attached), names the rotten replica and where, and the
        // replica is replaced on the spare storage host, filled from the two that agree.
        var spare = storage.Single(s => !replicas.Contains(s.Host.Id.ToString()));
        var healed = await app.StreamCommits.UntilAsync(Guid.Parse(volumeId), async () => (await tenant.Gql(
                "query($id: ID!) { volume(id: $id) { state lastScrubbedAt scrubRequested replicas { hostId state } } }", new { id = volumeId }))
            .ShouldSucceed().Data.GetProperty("volume"),
            v => v.State() == "HEALTHY" && v.ReplicaHosts().Contains(spare.Host.Id.ToString()), TimeSpan.FromSeconds(300),
            "the volume is HEALTHY again on the spare");
        Assert.Equal(3, healed.ReplicaHosts().Count);
        Assert.DoesNotContain(rotten.Host.Id.ToString(), healed.ReplicaHosts());
        Assert.False(healed.GetProperty("scrubRequested").GetBoolean());
        Assert.Equal(JsonValueKind.String, healed.GetProperty("lastScrubbedAt").ValueKind);
        var events = await EventsOf(volumeId);
        Assert.Equal(vmId, Assert.Single(events.OfType<VolumeScrubStarted>()).VmId);
        var bad = Assert.Single(events.OfType<VolumeReplicaBad>());
        Assert.Equal(rotten.Host.Id, bad.HostId);
        Assert.InRange(bad.Offset, at, at + (1 << 20) - 1);
        var scrubbed = Assert.Single(events.OfType<VolumeScrubbed>());
        Assert.Equal(1, scrubbed.BadReplicas);
        Assert.Null(scrubbed.Unresolved);
        Assert.True(scrubbed.Bytes >= 64 << 20);

        // The guest wrote nothing it could not read back, and, started again, reads the same 64 MiB from the three good replicas.
        Assert.DoesNotContain("I/O error", await console.ReadAsync());
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = writer })).ShouldSucceed();
        await tenant.WaitForPodAsync(writer, "STOPPED", seconds: 60);
        var holders = storage.Where(s => healed.ReplicaHosts().Contains(s.Host.Id.ToString())).ToList();
        Assert.Single(holders.Select(s => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(ReplicaFile(s.State, s.Host, volumeId))))).Distinct());
        var (_, _, _, readerConsole) = await RunPodAsync(lab, "reader", volumeId, Reader);
        Assert.Contains($"KRAUD-READBACK want={sum} got={sum}", await ConsoleUntilAsync(readerConsole, "KRAUD-READBACK", 180));
    }

    [Fact]
    public async Task the_scrub_round_scrubs_the_volumes_not_scrubbed_within_the_period_one_at_a_time_on_shared_storage_hosts_and_leaves_a_recently_scrubbed_one()
    {
        // Three storage hosts: every BLOCK volume of the spec has a replica on each, so at one scrub per storage host at once
        // the round may start only one of them.
        await using var lab = await LabAsync(3);
        var (first, _) = await HealthyVolumeAsync(lab, "first", "BLOCK");
        var (second, _) = await HealthyVolumeAsync(lab, "second", "BLOCK");
        var (fresh, _) = await HealthyVolumeAsync(lab, "fresh", "BLOCK");
        (await lab.Tenant.Gql("mutation($id: ID!) { scrubVolume(id: $id) { id } }", new { id = fresh })).ShouldSucceed();
        await ScrubbedAsync(fresh, 1);

        // The period: whatever makes both older volumes due (the second was made before the fresh one was, and that was
        // scrubbed since). The round is the one the node holding the "volume-scrub" role runs, on the application's
        // services; only its period is the spec's, since a week cannot pass in a spec.
        async Task RoundAsync()
        {
            await using var session = app.Store.QuerySession();
            var since = (await session.LoadAsync<VolumeView>(Guid.Parse(second)))!.Volume.CreatedAt;
            var fleet = new FleetOptions { VolumeScrubHours = (DateTimeOffset.UtcNow - since).TotalHours, VolumeScrubsPerStorageHost = 1 };
            using var round = Microsoft.Extensions.DependencyInjection.ActivatorUtilities.CreateInstance<VolumeScrubRound>(app.Host.Services, fleet);
            await round.RunOnceAsync(CancellationToken.None);
        }

        await RoundAsync();
        await ScrubbedAsync(first, 1);
        Assert.DoesNotContain(await EventsOf(second), e => e is VolumeScrubRequested); // its hosts were busy: it waits

        await RoundAsync();
        await ScrubbedAsync(second, 1);
        // The first (scrubbed by the first round) and the fresh one (scrubbed before) were not due again.
        Assert.Single((await EventsOf(first)).OfType<VolumeScrubRequested>());
        Assert.Single((await EventsOf(fresh)).OfType<VolumeScrubRequested>());
        var scrubbed = Assert.Single((await EventsOf(second)).OfType<VolumeScrubbed>());
        Assert.Equal(0, scrubbed.BadReplicas);
        Assert.Null((await EventsOf(second)).OfType<VolumeScrubStarted>().Single().VmId); // no guest has it: a compute host's storage daemon read it
    }

    /// <summary>Waits until the volume has been scrubbed <paramref name="times"/> times, and says where the scrub stopped if it was not.</summary>
    private async Task ScrubbedAsync(string volumeId, int times)
    {
        try
        {
            await EventsUntilAsync(volumeId, events => events.OfType<VolumeScrubbed>().Count() >= times, TimeSpan.FromSeconds(180),
                $"volume {volumeId} is scrubbed");
        }
        catch (TimeoutException e)
        {
            var events = (await app.EventsOf(Guid.Parse(volumeId))).Select(x => $"\n  {x.Version} {x.Timestamp:HH:mm:ss.fff} {x.EventTypeName} {JsonSerializer.Serialize(x.Data)}");
            throw new TimeoutException(e.Message + "\n--- events of the volume:" + string.Concat(events), e);
        }
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
