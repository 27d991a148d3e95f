using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Kraud.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Kraud.Tests.Api;

/// <summary>
/// GFS volumes with real guests: a file server microVM per volume (the volume attached as a BLOCK volume is, over the
/// storage hosts' exports) exports it over NFSv4 into the tenant's VPC, and pods on other compute hosts mount it. The
/// datacenter of this class: three qemu compute hosts, each in a runtime process of its own (so that one can die alone),
/// and three qemu storage hosts, in one zone.
/// </summary>
[Collection(ProcessFleetCollection.Name)]
public sealed class GfsVolumeSpecs(ProcessFleetApp app, Datacenter datacenter, ITestOutputHelper output) : IClassFixture<Datacenter>
{
    private static readonly IReadOnlyList<Datacenter.HostSpec> Layout =
    [
        new(0, Alone: true), new(0, Alone: true), new(0, Alone: true),
        new(0, "Storage"), new(0, "Storage"), new(0, "Storage"),
    ];

    /// <summary>How long clients may stall when the file server's host dies, until they are served again (see docs/ARCHITECTURE.md).</summary>
    public static readonly TimeSpan FailoverBound = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Each replica writes 8 MiB of random data and their checksum (fsync'd), reads every other replica's data and checks
    /// it, then appends a numbered 16-byte record with fsync every second and prints each acknowledged one with its uptime.
    /// </summary>
    private static string Sharer(string marker) => $$"""
        me=$(ip -4 addr show eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p')
        printf '%s' '{{marker}}' | dd of=/data/marker-$me bs=512 count=1 conv=fsync 2>/dev/null || { echo "KRAUD-TEST io-error marker"; exit 1; }
        dd if=/dev/urandom of=/data/blob-$me bs=1M count=8 conv=fsync 2>/dev/null || { echo "KRAUD-TEST io-error blob"; exit 1; }
        sum=$(sha256sum /data/blob-$me | cut -d' ' -f1)
        printf '%s %s\n' "$me" "$sum" | dd of=/data/sum-$me bs=512 count=1 conv=fsync 2>/dev/null || { echo "KRAUD-TEST io-error sum"; exit 1; }
        echo "KRAUD-TEST wrote $me $sum"
        i=0
        while :; do
          for f in /data/sum-*; do
            [ -f "$f" ] || continue
            set -- $(cat "$f")
            [ "$1" = "$me" ] || [ -f "/tmp/read-$1" ] || { echo "KRAUD-TEST read $1 want=$2 got=$(sha256sum /data/blob-$1 | cut -d' ' -f1)"; touch "/tmp/read-$1"; }
          done
          printf '%015d\n' $i | dd of=/data/log-$me bs=16 count=1 seek=$i conv=notrunc,fsync 2>/dev/null || { echo "KRAUD-TEST io-error $i"; exit 1; }
          echo "KRAUD-TEST ack $i $(cut -d' ' -f1 /proc/uptime)"
          i=$((i+1)); sleep 1
        done
        """;

    /// <summary>Reads every replica's record log and says how many records it holds and how many are not what was written there.</summary>
    private const string Verifier = """
        for f in /data/log-*; do
          n=$(($(wc -c < "$f") / 16)); bad=0; i=0
          while [ $i -lt $n ]; do
            [ "$(dd if="$f" bs=16 skip=$i count=1 2>/dev/null)" = "$(printf '%015d' $i)" ] || bad=$((bad+1)); i=$((i+1))
          done
          echo "KRAUD-TEST log ${f#/data/log-} records=$n bad=$bad"
        done
        echo "KRAUD-TEST verified"
        exec sleep 3600
        """;

    /// <summary>Connects to port 2049 of an address every few seconds and says whether it got in.</summary>
    private static string Prober(string address) => $$"""
        while :; do
          if echo | busybox timeout 5 nc {{address}} 2049 >/dev/null 2>&1; then echo "KRAUD-TEST reach open"; else echo "KRAUD-TEST reach closed"; fi
          sleep 2
        done
        """;

    private static async Task<JsonElement> CreatePodAsync(TenantScope tenant, string name, string zone, string script, int replicas = 1,
        string? volumeId = null) =>
        (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
        {
            @in = new
            {
                name, image = "busybox", cpu = 1, memoryMiB = 256, zone, replicas, command = new[] { "sh", "-c", script },
                volumes = volumeId is null ? null : new[] { new { volumeId, mountPath = "/data" } },
            },
        })).ShouldSucceed().Data.GetProperty("createPod");

    private static async Task<JsonElement> FileServerAsync(TenantScope tenant, string volumeId) =>
        (await tenant.Gql("query($id: ID!) { volume(id: $id) { fileServer { podId state address hostId generation } } }", new { id = volumeId }))
        .ShouldSucceed().Data.GetProperty("volume").GetProperty("fileServer");

    private static List<(int N, double Uptime)> Acks(IReadOnlyList<string> lines) =>
        lines.Select(l => l.Split(' ')).Where(f => f.Length == 4)
            .Select(f => (int.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture))).ToList();

    [Fact]
    public async Task two_pods_on_different_hosts_share_a_gfs_volume_through_its_file_server_which_fails_over_to_another_host_losing_nothing_acknowledged()
    {
        var dc = await datacenter.StartAsync(app, Layout);
        var zone = dc.Zone(0);
        var tenant = await TenantScope.CreateAsync(app, "gfs");
        var other = await TenantScope.CreateAsync(app, "gfsb");
        var marker = $"KRAUD-PLAINTEXT-{Guid.NewGuid():N}";
        var pods = new List<string>();
        string? volumeId = null;
        string? cordoned = null;
        try
        {
            volumeId = (await tenant.CreateVolumeAsync("shared", "GFS", 1, zone)).Id();
            await tenant.WaitForVolumeAsync(volumeId, "HEALTHY", 240);
            var server = await Eventually.Get(() => FileServerAsync(tenant, volumeId), s => s.ValueKind != JsonValueKind.Null && s.GetProperty("state").GetString() == "RUNNING",
                TimeSpan.FromSeconds(240), "the volume's file server runs");
            var address = server.GetProperty("address").GetString()!;
            var serverHost = server.GetProperty("hostId").GetString()!;

            // The two replicas of the sharing pod go to the two other hosts (the scheduler spreads a pod's replicas).
            cordoned = serverHost;
            await app.CordonAsync(serverHost);
            var share = (await CreatePodAsync(tenant, "share", zone, Sharer(marker), replicas: 2, volumeId)).Id();
            pods.Add(share);
            var prober = (await CreatePodAsync(other, "prober", zone, Prober(address))).Id();
            var running = await tenant.WaitForPodAsync(share, "RUNNING", 240);
            await app.UncordonAsync(serverHost);
            cordoned = null;
            var clients = running.Instances();
            Assert.Equal(2, clients.Select(c => c.HostId()).Distinct().Count());
            Assert.DoesNotContain(clients, c => c.HostId() == serverHost);

            // Each reads what the other wrote, by checksum.
            foreach (var (client, peer) in new[] { (clients[0], clients[1]), (clients[1], clients[0]) })
            {
                var peerIp = peer.GetProperty("ip4").GetString()!;
                var read = await Eventually.Get(() => dc.ConsoleLinesAsync(client, $"KRAUD-TEST read {peerIp} "), l => l.Count > 0, TimeSpan.FromSeconds(120),
                    $"a client read its peer's data\n{await dc.ConsoleTailAsync(client)}");
                var wrote = Assert.Single(await dc.ConsoleLinesAsync(peer, "KRAUD-TEST wrote "));
                var sum = wrote.Split(' ')[3];
                Assert.Equal($"KRAUD-TEST read {peerIp} want={sum} got={sum}", read[0]);
            }

            // Another tenant's pod, told the address, never gets through to the file server.
            var probe = Assert.Single((await other.WaitForPodAsync(prober, "RUNNING", 240)).Instances());
            var probes = await Eventually.Get(() => dc.ConsoleLinesAsync(probe, "KRAUD-TEST reach"), l => l.Count >= 2, TimeSpan.FromSeconds(90),
                "the other tenant's pod tried twice");
            Assert.All(probes, l => Assert.Equal("KRAUD-TEST reach closed", l));

            // The file server's host dies while both clients append and fsync.
            // Both clients' acks flow (the second may start its appends later than the first on a busy machine).
            foreach (var c in clients)
                await Eventually.Until(async () => Acks(await dc.ConsoleLinesAsync(c, "KRAUD-TEST ack ")).Count >= 3, TimeSpan.FromSeconds(60), "acks flow");
            var killed = Stopwatch.StartNew();
            await dc.KillAsync(dc.Hosts.Single(h => h.Id.ToString() == serverHost));
            var before = new List<int>();
            foreach (var c in clients) before.Add(Acks(await dc.ConsoleLinesAsync(c, "KRAUD-TEST ack ")).Max(a => a.N));

            var moved = await Eventually.Get(() => FileServerAsync(tenant, volumeId), s => s.GetProperty("state").GetString() == "RUNNING"
                    && s.GetProperty("hostId").GetString() != serverHost, FailoverBound, "the file server runs on another host");
            Assert.Equal(address, moved.GetProperty("address").GetString());
            var resumed = new List<double>();
            foreach (var (c, i) in clients.Select((c, i) => (c, i)))
            {
                await Eventually.Until(async () => Acks(await dc.ConsoleLinesAsync(c, "KRAUD-TEST ack ")).Max(a => a.N) > before[i] + 1,
                    FailoverBound - killed.Elapsed + TimeSpan.FromSeconds(1), $"a client writes again after the failover\n{await dc.ConsoleTailAsync(c)}");
                resumed.Add(killed.Elapsed.TotalSeconds);
            }
            var stalls = new List<double>();
            foreach (var c in clients)
            {
                var acks = Acks(await dc.ConsoleLinesAsync(c, "KRAUD-TEST ack "));
                stalls.Add(acks.Zip(acks.Skip(1), (a, b) => b.Uptime - a.Uptime).Max());
                Assert.Empty(await dc.ConsoleLinesAsync(c, "KRAUD-TEST io-error"));
            }
            Assert.True(killed.Elapsed < FailoverBound, $"served again after {killed.Elapsed}");
            // The figure the README and the bench line quote.
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"GFS failover: clients wrote again {resumed.Max():F1} s after the file server's host was killed; longest stall in a guest {stalls.Max():F1} s"));

            // A pod started after the failover reads every record acknowledged before it, in both logs.
            var lastAcked = new List<int>();
            foreach (var c in clients) lastAcked.Add(Acks(await dc.ConsoleLinesAsync(c, "KRAUD-TEST ack ")).Max(a => a.N));
            var verifier = (await CreatePodAsync(tenant, "verifier", zone, Verifier, volumeId: volumeId)).Id();
            pods.Add(verifier);
            var verifierVm = Assert.Single((await tenant.WaitForPodAsync(verifier, "RUNNING", 240)).Instances());
            var logs = await Eventually.Get(() => dc.ConsoleLinesAsync(verifierVm, "KRAUD-TEST "), l => l.Contains("KRAUD-TEST verified"),
                TimeSpan.FromSeconds(120), $"the verifier read the logs\n{await dc.ConsoleTailAsync(verifierVm)}");
            foreach (var (c, i) in clients.Select((c, i) => (c, i)))
            {
                var line = Assert.Single(logs, l => l.StartsWith($"KRAUD-TEST log {c.GetProperty("ip4").GetString()} ", StringComparison.Ordinal));
                var fields = line.Split(' ');
                Assert.True(int.Parse(fields[3]["records=".Length..], CultureInfo.InvariantCulture) > lastAcked[i], line);
                Assert.Equal("bad=0", fields[4]);
            }

            // The bytes are on the storage hosts, as ciphertext only: no replica file holds the plaintext marker.
            var needle = Encoding.ASCII.GetBytes(marker);
            var replicaFiles = dc.Hosts.Where(h => h.Role == "Storage")
                .SelectMany(h => Directory.Exists(Path.Combine(dc.State, "hosts", h.Name)) ? Directory.EnumerateFiles(Path.Combine(dc.State, "hosts", h.Name), "*", SearchOption.AllDirectories) : [])
                .ToList();
            Assert.Contains(replicaFiles, f => f.EndsWith(Path.Combine(volumeId, "data.raw"), StringComparison.Ordinal));
            foreach (var file in replicaFiles)
                Assert.False(File.ReadAllBytes(file).AsSpan().IndexOf(needle) >= 0, $"{file} holds the plaintext marker");

            // The volume cannot be deleted while pods mount it; once they are gone it is, and its file server stops with it.
            (await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = volumeId })).ShouldFailWith("PRECONDITION");
            foreach (var pod in pods) (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod })).ShouldSucceed();
            foreach (var pod in pods) await tenant.WaitForPodAsync(pod, "STOPPED", 60);
            pods.Clear();
            (await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = volumeId })).ShouldSucceed();
            await tenant.WaitForPodAsync(moved.GetProperty("podId").GetString()!, "STOPPED", 60);
            volumeId = null;
        }
        finally
        {
            if (cordoned is not null) await app.UncordonAsync(cordoned);
            foreach (var pod in pods) await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod });
            await other.DeletePodsAsync();
            foreach (var pod in pods)
            {
                try
                {
                    await tenant.WaitForPodAsync(pod, "STOPPED", 60);
                }
                catch (TimeoutException)
                {
                    // The datacenter's teardown stops whatever is left.
                }
            }
            if (volumeId is not null) await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = volumeId });
        }
    }
}
