using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Kraud.Bench;

/// <summary>
/// A GFS volume's failover on this machine, with the control plane's own settings (heartbeats every 2 s, a host silent for
/// 10 s is FAILED): Kraud in-process with a real data plane (network namespaces, wireguard-go), two qemu compute hosts and
/// three qemu storage hosts in one zone. A pod on one compute host mounts the volume from its file server on the other
/// and appends a record with fsync every 200 ms, printing each acknowledged one with the guest's uptime. Then the file
/// server's host dies (its runtime goes silent, as on a power cut, and its QEMU is SIGKILLed): the figures are the time
/// from the kill until the pod's writes are acknowledged again (wall clock), the longest gap between two acknowledgements
/// in the guest, and the parts of it the control plane's events show (failure detected, file server running again).
/// </summary>
public static class GfsBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var state = Path.Combine(Path.GetTempPath(), $"kraud-gfs-bench-{suffix}");
        var settings = new List<(string, string)>
        {
            ("Fleet:Network", "wireguard"), ("Fleet:Underlay", $"krg{suffix}"), ("Fleet:UnderlayCidr", $"100.64.{Random.Shared.Next(0, 256)}.0/24"),
            ("Fleet:Qemu:StateDirectory", state), ("Fleet:Qemu:GuestDirectory", Path.Combine(RepositoryRoot(), ".kraud", "guest")),
            ("Fleet:Qemu:MaxMemoryMiB", "256"), ("Fleet:Qemu:MaxCpus", "1"), ("Fleet:Qemu:MaxEphemeralMiB", "64"), ("Fleet:Qemu:MaxVolumeMiB", "96"),
            ("Fleet:Qemu:BootTimeoutSeconds", "180"), ("Fleet:Qemu:Kvm", options.Kvm is true ? "true" : "false"),
        };
        // BenchApp alternates zones a, b: hosts 0 and 2 are zone a's compute hosts, 4, 6 and 8 its storage hosts.
        for (var i = 0; i < 10; i++) settings.Add(($"Fleet:Hosts:{i}:Driver", "qemu-microvm"));
        await using var app = await BenchApp.StartAsync(options with { Hosts = 4 }, storageHosts: 6, [.. settings]);
        try
        {
            var volumeId = (await app.Gql(app.TenantToken, "mutation { createVolume(input: {name: \"shared\", class: GFS, sizeGiB: 1, zone: \"bench-a\"}) { id } }"))
                .GetProperty("createVolume").GetProperty("id").GetString()!;
            var server = await UntilAsync(() => FileServerAsync(app, volumeId), s => s is { } v && v.GetProperty("state").GetString() == "RUNNING",
                "the file server runs", 600);
            var serverHost = server!.Value.GetProperty("hostId").GetString()!;

            const string writer = """
                i=0
                while :; do
                  printf '%015d\n' $i | dd of=/data/log bs=16 count=1 seek=$i conv=notrunc,fsync 2>/dev/null || { echo "KRAUD-BENCH io-error $i"; exit 1; }
                  echo "KRAUD-BENCH ack $i $(cut -d' ' -f1 /proc/uptime)"
                  i=$((i+1)); usleep 200000
                done
                """;
            var podId = (await app.Gql(app.TenantToken, "mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
            {
                @in = new
                {
                    name = "writer", image = "nginx", cpu = 1, memoryMiB = 256, zone = "bench-a", command = new[] { "sh", "-c", writer },
                    volumes = new[] { new { volumeId, mountPath = "/data" } },
                },
            })).GetProperty("createPod").GetProperty("id").GetString()!;
            var vm = (await UntilAsync(() => PodAsync(app, podId), p => p.GetProperty("state").GetString() == "RUNNING", "the writer runs", 600))
                .GetProperty("instances")[0];
            var clientHost = vm.GetProperty("hostId").GetString()!;
            if (clientHost == serverHost) throw new InvalidOperationException("the writer was placed beside its file server");
            var log = Path.Combine(state, "hosts", HostName(app, clientHost), "logs", $"{vm.GetProperty("id").GetString()}.log");
            await UntilAsync(async () => Acks(log).Count, n => n >= 10, "the writer writes", 120);

            // The file server's host dies.
            var victim = app.Agents.All.Single(a => a.Id.ToString() == serverHost);
            var serverPod = server.Value.GetProperty("podId").GetString()!;
            var qemu = Directory.GetFiles(Path.Combine(state, "hosts", victim.Name, "vms"), "qemu.pid", SearchOption.AllDirectories).Single();
            var killed = Stopwatch.StartNew();
            var killedAt = DateTimeOffset.UtcNow;
            victim.PowerOff();
            Process.GetProcessById(int.Parse(File.ReadAllText(qemu).Trim(), CultureInfo.InvariantCulture)).Kill();
            var last = Acks(log).Max(a => a.N);
            await UntilAsync(async () => Acks(log).Max(a => a.N), n => n > last + 1, "the writer writes again", 600);
            var resumed = killed.Elapsed.TotalSeconds;
            var acks = Acks(log);
            var stall = acks.Zip(acks.Skip(1), (a, b) => b.Uptime - a.Uptime).Max();
            if (File.ReadAllText(log).Contains("KRAUD-BENCH io-error", StringComparison.Ordinal)) throw new InvalidOperationException("the writer saw an I/O error");

            var failed = await EventAtAsync(app, Guid.Parse(serverHost), "HostFailed");
            var running = await EventAtAsync(app, Guid.Parse(serverPod), "PodReplicaRunning", after: killedAt);
            Console.WriteLine();
            Console.WriteLine($"Kraud GFS failover benchmark: control-plane defaults (heartbeat 2 s, host FAILED after 10 s of silence), TCG guests 1 vCPU 256 MiB, " +
                              $"{Environment.ProcessorCount} cores; client mount hard,timeo=20 (2 s), file server lease and grace 10 s; one run");
            Console.WriteLine();
            Console.WriteLine("| from the kill of the file server's host | seconds | baseline |");
            Console.WriteLine("|---|---|---|");
            Console.WriteLine($"| host FAILED (heartbeats missed) | {Seconds(failed, killedAt)} | Fleet:HeartbeatTimeoutSeconds = 10 |");
            Console.WriteLine($"| file server RUNNING on the other host | {Seconds(running, killedAt)} | - |");
            Console.WriteLine($"| client's fsync'd writes acknowledged again (wall clock) | {resumed:F1} | GfsVolumeSpecs bound: 90 |");
            Console.WriteLine($"| longest gap between two acknowledgements in the guest | {stall:F1} | 0.2 without a failover |");
            return 0;
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }
    }

    private static string Seconds(DateTimeOffset? at, DateTimeOffset from) => at is { } t ? (t - from).TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) : "-";

    private static string HostName(BenchApp app, string hostId) => app.Agents.All.Single(a => a.Id.ToString() == hostId).Name;

    private static List<(int N, double Uptime)> Acks(string log)
    {
        if (!File.Exists(log)) return [];
        using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd().Split('\n')
            .Select(l => l.Split(' ')).Where(f => f.Length == 7 && f[3] == "KRAUD-BENCH" && f[4] == "ack")
            .Select(f => (int.Parse(f[5], CultureInfo.InvariantCulture), double.Parse(f[6], CultureInfo.InvariantCulture))).ToList();
    }

    private static async Task<DateTimeOffset?> EventAtAsync(BenchApp app, Guid streamId, string type, DateTimeOffset? after = null)
    {
        await using var session = app.Store.QuerySession();
        return (await session.Events.FetchStreamAsync(streamId))
            .Where(e => e.Data.GetType().Name == type && (after is null || e.Timestamp > after))
            .Select(e => (DateTimeOffset?)e.Timestamp).FirstOrDefault();
    }

    private static async Task<JsonElement?> FileServerAsync(BenchApp app, string volumeId)
    {
        var fs = (await app.Gql(app.TenantToken, "query($id: ID!) { volume(id: $id) { fileServer { podId state hostId } } }", new { id = volumeId }))
            .GetProperty("volume").GetProperty("fileServer");
        return fs.ValueKind == JsonValueKind.Null ? null : fs;
    }

    private static async Task<JsonElement> PodAsync(BenchApp app, string podId) =>
        (await app.Gql(app.TenantToken, "query($id: ID!) { pod(id: $id) { state instances { id hostId } } }", new { id = podId })).GetProperty("pod");

    private static async Task<T> UntilAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what, int seconds)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (deadline.Elapsed > TimeSpan.FromSeconds(seconds)) throw new TimeoutException($"timed out waiting until {what}");
            await Task.Delay(100);
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
