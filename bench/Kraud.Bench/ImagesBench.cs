using System.Collections.Concurrent;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Kraud.Api.Images;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Images;
using Kraud.HostRuntime.Logs;
using Kraud.HostRuntime.Storage;

namespace Kraud.Bench;

/// <summary>
/// OCI images on real microVMs (issue 15): a registry of the bench's own (Debian's docker-registry), two images it builds
/// (busybox, then a layer of random bytes that does not compress, ~30 MB and ~300 MB, and an entrypoint that prints a
/// line), and per image: a cold start through the host runtime's qemu-microvm driver on an empty cache (pull by digest,
/// verify, unpack while downloading, mkfs.erofs, the guest booting meanwhile, to the workload's first log line; and where its time
/// went) beside `skopeo copy` + `umoci unpack` of the same image by hand, and a warm start (layers and root file system cached) beside a plain boot of the guest
/// without an image (to its ready line).
/// </summary>
public static class ImagesBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var warmRuns = Math.Clamp(options.Runs, 1, 5);
        var root = Path.Combine(Path.GetTempPath(), $"kraud-images-bench-{Guid.NewGuid():N}"[..34]);
        var guest = Path.Combine(RepositoryRoot(), ".kraud", "guest");
        await using var registry = await EmbeddedRegistry.StartAsync(Path.Combine(root, "registry"));
        using var client = new DistributionClient(new RegistryOptions { InsecureRegistries = [registry.HostPort] });
        var busybox = await BusyboxImage.BuildAsync();
        var qemu = new QemuOptions
        {
            StateDirectory = Path.Combine(root, "state"), GuestDirectory = guest, MaxMemoryMiB = 256, MaxCpus = 1, MaxEphemeralMiB = 64, BootTimeoutSeconds = 300,
        };
        var sink = new FirstLines();
        using var sealing = SealingKeyPair.From(KeyEncryptionKey.LoadOrCreate(Path.Combine(root, "kek")));
        var rows = new List<string>();
        var phases = new List<string>();
        var accelerator = "";
        try
        {
            // The plain boot: the guest of every microVM, no image (the figure warm starts stand beside).
            var plain = new List<double>();
            await using (var driver = QemuMicroVmDriver.Start(qemu, "plain"))
            {
                await driver.ImageAsync(CancellationToken.None);
                var chosen = (await driver.AcceleratorAsync(CancellationToken.None))!;
                accelerator = $"{chosen.Name}, because {chosen.Reason}";
                for (var i = 0; i < warmRuns; i++)
                {
                    var spec = Spec(null);
                    var clock = Stopwatch.StartNew();
                    await driver.BootAsync(spec, CancellationToken.None);
                    plain.Add(clock.Elapsed.TotalMilliseconds);
                    await driver.StopAsync(spec.VmId, CancellationToken.None);
                }
            }
            plain.Sort();
            var plainP50 = Stats.P(plain, 50);

            foreach (var mib in new[] { 30, 300 })
            {
                var repository = $"bench/payload-{mib}";
                var (digest, bytes) = await PushAsync(client, registry.HostPort, busybox, repository, mib);
                var image = new OciImage(registry.HostPort, repository, digest);
                Console.WriteLine($"{mib} MB image pushed: {bytes / 1e6:F1} MB compressed ({digest[..19]}…)");

                // By hand, first: the same pull and unpack, with the tools of the field, into a directory of its own.
                var byHand = await ByHandAsync(registry.HostPort, repository, digest, Path.Combine(root, $"by-hand-{mib}"));

                // Kraud on a host with an empty cache: pull, verify, unpack, erofs, boot, first line of the workload.
                var host = $"bench{mib}";
                var cache = new ImageCache(QemuMicroVmDriver.ImageCacheDirectory(qemu, host), 4L << 30);
                // The pull's and the build's own timings, printed with a clock: where a cold start's time goes.
                var stages = new StageLog();
                var puller = new ImagePuller(new DistributionClient(new RegistryOptions { InsecureRegistries = [registry.HostPort] }), cache,
                    new RootfsBuilder(qemu, stages), stages);
                ImageBuildTimes? built = null;
                var builtAt = 0L;
                puller.Built += times =>
                {
                    built = times;
                    builtAt = Stopwatch.GetTimestamp();
                };
                await using var driver = QemuMicroVmDriver.Start(qemu, host, null, new WorkloadServices(puller, sealing, sink));
                await driver.ImageAsync(CancellationToken.None);
                var (coldStarted, coldReady, cold) = await StartToFirstLineAsync(driver, sink, image);
                if (built is { } b)
                    phases.Add($"| ~{mib} MB | {b.FetchMs:F0} ms | {b.UnpackMs:F0} ms{(b.Streamed ? "" : " (umoci)")} | {b.ErofsMs:F0} ms | {Stopwatch.GetElapsedTime(coldStarted, builtAt).TotalMilliseconds:F0} ms | "
                               + $"{coldReady:F0} ms | {cold:F0} ms |");
                var warm = new List<double>();
                for (var i = 0; i < warmRuns; i++) warm.Add((await StartToFirstLineAsync(driver, sink, image)).FirstLine);
                warm.Sort();
                var handTotal = byHand.Copy + byHand.Unpack;
                rows.Add($"| ~{mib} MB ({bytes / 1e6:F0} MB compressed) | {cold:F0} ms | {byHand.Copy:F0} + {byHand.Unpack:F0} = {handTotal:F0} ms | "
                         + $"{cold / handTotal:F2} | {cold / (handTotal + plainP50):F2} | {Stats.P(warm, 50):F0} ms | {plainP50:F0} ms | {Stats.P(warm, 50) / plainP50:F2} |");
            }
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }

        Console.WriteLine();
        Console.WriteLine($"Kraud images benchmark: 1 vCPU, 256 MiB guests, {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine($"Accelerator: {accelerator}");
        Console.WriteLine("Cold: Kraud's pull + verify + unpack + mkfs.erofs + boot, to the workload's first log line, on an empty host cache.");
        Console.WriteLine("By hand: skopeo copy (registry to an OCI layout) + umoci unpack (to a bundle), no boot. Warm: layers and root file system cached.");
        Console.WriteLine();
        Console.WriteLine("| image | Kraud cold start | skopeo copy + umoci unpack by hand | ratio to by hand (target <= 1.2) | ratio to by hand + plain boot | Kraud warm start, p50 | plain boot, p50 | warm / plain |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var row in rows) Console.WriteLine(row);
        Console.WriteLine();
        Console.WriteLine("Where the cold start's time goes: the build's phases (download with the digest checked as the bytes arrive, done at;");
        Console.WriteLine("the unpack of the layers as they arrive, done at; mkfs.erofs, its own time), then the clock from the boot request: the");
        Console.WriteLine("image built, the guest READY (it boots meanwhile and mounts the image once built), the workload's first log line.");
        Console.WriteLine();
        Console.WriteLine("| image | download + verify done | unpack (beside the download) done | mkfs.erofs | image built at | guest READY at | first log line at |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var row in phases) Console.WriteLine(row);
        Console.WriteLine();
        return 0;
    }

    /// <summary>
    /// Boots a microVM of the image and waits for its workload's first line: when the boot was requested, and the wall clock
    /// from then until BootAsync returned (the guest READY) and until the first line.
    /// </summary>
    private static async Task<(long Started, double Ready, double FirstLine)> StartToFirstLineAsync(QemuMicroVmDriver driver, FirstLines sink, OciImage image)
    {
        var spec = Spec(image);
        var first = sink.Await(spec.VmId);
        var started = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        await driver.BootAsync(spec, CancellationToken.None);
        var booted = clock.Elapsed.TotalMilliseconds;
        await first.WaitAsync(TimeSpan.FromMinutes(10));
        var elapsed = clock.Elapsed.TotalMilliseconds;
        Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} microVM {spec.VmId.ToString()[..8]}: BootAsync returned after {booted:F0} ms (QEMU start, pull and build meanwhile, guest ready), first log line after {elapsed:F0} ms");
        await driver.StopAsync(spec.VmId, CancellationToken.None);
        return (started, booted, elapsed);
    }

    private static MicroVmSpec Spec(OciImage? image) =>
        new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, "busybox", [], new Dictionary<string, string>(), 1, 256, 0, false, Oci: image);

    private static async Task<(double Copy, double Unpack)> ByHandAsync(string registry, string repository, string digest, string directory)
    {
        Directory.CreateDirectory(directory);
        var clock = Stopwatch.StartNew();
        await Run("skopeo", "copy", "--quiet", "--src-tls-verify=false", $"docker://{registry}/{repository}@{digest}", $"oci:{directory}/layout:bench");
        var copy = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        await Run("umoci", "unpack", "--image", $"{directory}/layout:bench", $"{directory}/bundle");
        var unpack = clock.Elapsed.TotalMilliseconds;
        Directory.Delete(directory, recursive: true);
        return (copy, unpack);
    }

    private static async Task Run(string program, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(ProcessRunner.Which(program) ?? throw new InvalidOperationException($"{program} is not installed"), args,
            TimeSpan.FromMinutes(15), CancellationToken.None);
        if (result.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed: {result.Error}{result.Output}");
    }

    /// <summary>busybox, then a layer with <paramref name="mib"/> MB of random bytes and /bench.sh, which prints a line and sleeps.</summary>
    private static async Task<(string Digest, long Bytes)> PushAsync(DistributionClient client, string registry, BusyboxImage busybox, string repository, int mib)
    {
        var tar = new MemoryStream();
        await using (var writer = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            var payload = new byte[mib * 1_000_000];
            RandomNumberGenerator.Fill(payload);
            writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "payload.bin") { DataStream = new MemoryStream(payload), Mode = (UnixFileMode)0b110_100_100 });
            writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "bench.sh")
            {
                DataStream = new MemoryStream(Encoding.ASCII.GetBytes("#!/bin/sh\necho KRAUD-BENCH-FIRST-LINE\nexec sleep 3600\n")), Mode = (UnixFileMode)0b111_101_101,
            });
        }
        var uncompressed = tar.ToArray();
        var compressed = new MemoryStream();
        await using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) await gzip.WriteAsync(uncompressed);
        var layer = compressed.ToArray();
        var busyboxConfig = JsonNode.Parse(busybox.Config)!;
        var config = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["config"] = new JsonObject { ["Env"] = new JsonArray("PATH=/bin"), ["Entrypoint"] = new JsonArray("/bench.sh") },
            ["rootfs"] = new JsonObject
            {
                ["type"] = "layers", ["diff_ids"] = new JsonArray(busyboxConfig["rootfs"]!["diff_ids"]![0]!.GetValue<string>(), Digests.Of(uncompressed)),
            },
        }.ToJsonString());
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = MediaTypes.OciManifest,
            ["config"] = new JsonObject { ["mediaType"] = MediaTypes.OciConfig, ["digest"] = Digests.Of(config), ["size"] = config.Length },
            ["layers"] = new JsonArray(
                new JsonObject { ["mediaType"] = MediaTypes.OciLayerGzip, ["digest"] = Digests.Of(busybox.Layer), ["size"] = busybox.Layer.Length },
                new JsonObject { ["mediaType"] = MediaTypes.OciLayerGzip, ["digest"] = Digests.Of(layer), ["size"] = layer.Length }),
        }.ToJsonString());
        foreach (var blob in new[] { busybox.Layer, layer, config }) await client.PushBlobAsync(registry, repository, blob, null, CancellationToken.None);
        await client.PushManifestAsync(registry, repository, "1", MediaTypes.OciManifest, manifest, null, CancellationToken.None);
        return (Digests.Of(manifest), busybox.Layer.Length + layer.Length);
    }

    /// <summary>Signals the first workload line of each microVM.</summary>
    private sealed class FirstLines : IWorkloadLogSink
    {
        private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _waiting = new();

        public Task Await(Guid vmId) => _waiting.GetOrAdd(vmId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        public void Enqueue(WorkloadLogLine line)
        {
            if (_waiting.TryGetValue(line.VmId, out var first)) first.TrySetResult();
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}

/// <summary>The image pull's and build's log lines with a clock, without the per-chunk download progress.</summary>
internal sealed class StageLog : Microsoft.Extensions.Logging.ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Information;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception,
        Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        var message = formatter(state, exception);
        if (message.Contains(" of ", StringComparison.Ordinal) && message.StartsWith("Pulling ", StringComparison.Ordinal)) return;
        Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {message}");
    }
}
