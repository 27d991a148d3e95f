using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Configuration;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Ingress;
using Kraud.HostRuntime.Network;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.Bench;

/// <summary>
/// The data plane (issue 16) on this machine: two hosts' network namespaces on an underlay bridge of their own, each with
/// its wireguard-go device, a real guest on each (the server runs busybox httpd and a sink, the client measures). Pod to pod:
/// ping round trips and TCP throughput over the WireGuard VPC, and the very same guests with the hosts routing their
/// addresses over the plain bridge instead (no WireGuard): the ratio is the figure. Ingress: wrk against the ingress proxy
/// (HTTPS, Kestrel + YARP in the runtime, to the server guest through WireGuard) beside wrk against the same guest reached
/// directly from the ingress host's namespace (plain HTTP through the same WireGuard path): requests/s and p99.
/// </summary>
public static class DataPlaneBench
{
    private const string Overlay = "10.250.0.0/23";
    private const string ServerIp = "10.250.0.2";
    private const string ClientIp = "10.250.0.3";

    public static async Task<int> RunAsync(Options options)
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var state = Path.Combine(Path.GetTempPath(), $"kraud-dp-bench-{suffix}");
        // Declared first, so disposed last: after the guests and namespaces, also when a measurement throws.
        using var removeState = new RemovedAtDispose(state);
        var subnet = Random.Shared.Next(0, 256);
        var fleet = new FleetOptions
        {
            Network = NetworkModes.WireGuard, Underlay = $"krb{suffix}", UnderlayCidr = $"100.64.{subnet}.0/24",
            Qemu = new QemuOptions
            {
                StateDirectory = state, GuestDirectory = Path.Combine(RepositoryRoot(), ".kraud", "guest"), MaxMemoryMiB = 256, MaxCpus = 1,
                BootTimeoutSeconds = 180, Kvm = options.Kvm,
            },
        };
        var (keysA, keysB) = (new HostRuntime.Network.WireGuardKeys(), new HostRuntime.Network.WireGuardKeys());
        // A: the client guest and the ingress proxy; B: the server guest.
        using var a = HostNamespace.Start(fleet, new HostDefinition { Name = $"bench-a-{suffix}", Role = "Ingress", UnderlayAddress = $"100.64.{subnet}.10" }, keysA.PrivateKey(), NullLogger.Instance);
        using var b = HostNamespace.Start(fleet, new HostDefinition { Name = $"bench-b-{suffix}", UnderlayAddress = $"100.64.{subnet}.11" }, keysB.PrivateKey(), NullLogger.Instance);
        a.UseIngressTunnel();
        a.ApplyWireGuard(WireGuardInterface.Render(keysA.PrivateKey(),
            [new WireGuardPeer(Guid.Empty, b.HostName, keysB.PublicKey, $"{b.UnderlayAddress}:51820", [$"{ServerIp}/32"])]));
        b.ApplyWireGuard(WireGuardInterface.Render(keysB.PrivateKey(),
            [new WireGuardPeer(Guid.Empty, a.HostName, keysA.PublicKey, $"{a.UnderlayAddress}:51820", [$"{ClientIp}/32", $"{a.IngressTunnelAddress}/32"])]));
        var tenant = Guid.NewGuid();
        var discovery = new ApplyServiceDiscovery(Guid.Empty, 1, [new TenantNetwork(tenant, "fd00:bbbb:cccc::/48",
            [new NamespaceOverlay("default", Overlay, "fd00:bbbb:cccc:1::/64")], [])]);
        a.ApplyServiceDiscovery(discovery);
        b.ApplyServiceDiscovery(discovery);
        // The plain-bridge baseline: the hosts' firewalls let the tenant's packets in from the underlay as well (Kraud's own never
        // does: only WireGuard and DIRECT exposures reach a tap), checked against the same tenant set as over WireGuard.
        foreach (var ns in new[] { a, b })
            NetCommand.InNamespace(ns.Name, "nft", ["-f", "-"],
                $"insert rule inet kraud forward iifname \"{HostNamespace.UnderlayDevice}\" oifname \"{HostNamespace.TapPrefix}*\" ip saddr . ip daddr @same4 accept\n");

        await using var driverA = QemuMicroVmDriver.Start(fleet.Qemu, a.HostName, null, network: a);
        await using var driverB = QemuMicroVmDriver.Start(fleet.Qemu, b.HostName, null, network: b);
        var accelerator = (await driverA.AcceleratorAsync(CancellationToken.None))!;
        var bytes = options.Runs * 2 * 1024 * 1024;
        var server = Spec(tenant, ServerIp, $"mkdir -p /www && head -c 512 /dev/zero > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count={bytes / 1024 / 1024} 2>/dev/null && " +
                                            "exec httpd -f -p 80 -h /www");
        var client = Spec(tenant, ClientIp,
            // Rounds start once the server answers (its page file takes a moment to write under emulation).
            $"until busybox timeout 5 busybox wget -q -O /dev/null http://{ServerIp}/index.html; do sleep 1; done; n=0; while true; do n=$((n+1)); echo \"KRAUD-BENCH round $n start\"; " +
            $"echo \"KRAUD-BENCH $n ping $(ping -c 20 -i 0.2 -W 2 {ServerIp} | tail -n 1)\"; " +
            "s=$(cut -d' ' -f1 /proc/uptime); " +
            $"if busybox timeout 120 busybox wget -q -O /dev/null http://{ServerIp}/big; then " +
            $"e=$(cut -d' ' -f1 /proc/uptime); echo \"KRAUD-BENCH $n tput $s $e {bytes / 1024}\"; else echo \"KRAUD-BENCH $n tput failed\"; fi; " +
            "echo \"KRAUD-BENCH round $n end\"; sleep 1; done");
        await Task.WhenAll(driverB.BootAsync(server, new Dictionary<Guid, byte[]>(), CancellationToken.None),
            driverA.BootAsync(client, new Dictionary<Guid, byte[]>(), CancellationToken.None));
        // The workload's stdout: the host's CRI log file of the microVM (its console has only the init's lines).
        var console = driverA.WorkloadLogOf(client.VmId);

        var results = new Dictionary<string, List<(double RttMs, double MBps)>> { ["wireguard"] = [], ["bridge"] = [] };
        for (var i = 0; i < 3; i++)
            foreach (var mode in new[] { "wireguard", "bridge" })
            {
                Route(a, b, plain: mode == "bridge");
                results[mode].Add(await NextRoundAsync(console));
            }
        Route(a, b, plain: false);
        // The client's rounds would keep the server guest busy during the ingress measurement.
        await driverA.StopAsync(client.VmId, CancellationToken.None);

        // Ingress: the proxy on A with a certificate of a throwaway Kraud CA, routing to the server guest.
        var ca = Api.Ingresses.IngressCertificateAuthority.LoadOrCreate(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Ingress:CaDirectory"] = Path.Combine(state, "ca") }).Build());
        await using var proxy = await IngressProxy.StartAsync(a, null);
        const string host = "bench.ingress.kraud.cloud";
        proxy.Apply(new ApplyIngressConfig(Guid.Empty, 1,
            [new IngressSite(Guid.NewGuid(), tenant, "bench", "MANAGED", [host], null, [new IngressSiteRoute(host, "/", [$"{ServerIp}:80"])])],
            [ca.Issue(["*.ingress.kraud.cloud"], DateTimeOffset.UtcNow)]));
        var duration = Math.Max(5, options.Runs);
        var viaIngress = Wrk(null, $"https://{proxy.Endpoint}/", host, duration);
        var direct = Wrk(a.Name, $"http://{ServerIp}:80/", null, duration);

        Console.WriteLine();
        Console.WriteLine($"Kraud data plane benchmark: 2 host namespaces on bridge {fleet.Underlay}, wireguard-go per host, guests 1 vCPU 256 MiB under " +
                          $"{accelerator.Name}, {Environment.ProcessorCount} cores; 3 rounds per mode, medians");
        Console.WriteLine();
        Console.WriteLine("| pod to pod | WireGuard VPC | same guests, plain bridge | ratio (VPC / bridge) |");
        Console.WriteLine("|---|---|---|---|");
        var (wgRtt, brRtt) = (Median(results["wireguard"].Select(r => r.RttMs)), Median(results["bridge"].Select(r => r.RttMs)));
        var (wgTput, brTput) = (Median(results["wireguard"].Select(r => r.MBps)), Median(results["bridge"].Select(r => r.MBps)));
        Console.WriteLine($"| ping round trip, avg of 20 | {wgRtt:F2} ms | {brRtt:F2} ms | {wgRtt / brRtt:F2} |");
        Console.WriteLine($"| TCP throughput (HTTP GET of {bytes / 1024 / 1024} MiB) | {wgTput:F1} MiB/s | {brTput:F1} MiB/s | {wgTput / brTput:F2} |");
        Console.WriteLine();
        Console.WriteLine($"| ingress (wrk -t1 -c8 -d{duration}s) | through the ingress proxy (HTTPS) | same pod directly (HTTP, from the ingress host) | ratio |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| requests/s | {viaIngress.Rps:F0} | {direct.Rps:F0} | {viaIngress.Rps / direct.Rps:F2} |");
        Console.WriteLine($"| p99 latency | {viaIngress.P99Ms:F1} ms | {direct.P99Ms:F1} ms | {viaIngress.P99Ms / direct.P99Ms:F2} |");
        Console.WriteLine($"| non-2xx/3xx or socket errors | {viaIngress.Errors} | {direct.Errors} | - |");

        await driverB.StopAsync(server.VmId, CancellationToken.None);
        keysA.Dispose();
        keysB.Dispose();
        return 0;
    }

    /// <summary>Plain: each namespace routes the other guest's address to the other host's underlay address, around WireGuard.</summary>
    private static void Route(HostNamespace a, HostNamespace b, bool plain)
    {
        NetCommand.Run("ip", ["-n", a.Name, "route", plain ? "replace" : "del", $"{ServerIp}/32", .. plain ? new[] { "via", b.UnderlayAddress } : []],
            allowFailure: !plain);
        NetCommand.Run("ip", ["-n", b.Name, "route", plain ? "replace" : "del", $"{ClientIp}/32", .. plain ? new[] { "via", a.UnderlayAddress } : []],
            allowFailure: !plain);
    }

    /// <summary>Waits for a round of the client that starts after now, and reads its ping average and throughput.</summary>
    private static async Task<(double RttMs, double MBps)> NextRoundAsync(string console)
    {
        var after = Rounds(console).Select(r => r.Round).DefaultIfEmpty(0).Max() + 1;
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(5))
        {
            var lines = File.Exists(console) ? ReadShared(console) : "";
            var round = Rx.Matches(lines, @"KRAUD-BENCH round (\d+) end").Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))
                .Where(n => n > after).DefaultIfEmpty(0).Min();
            if (round > 0)
            {
                var ping = Rx.Match(lines, $@"KRAUD-BENCH {round} ping .*= [0-9.]+/([0-9.]+)/");
                var tput = Rx.Match(lines, $@"KRAUD-BENCH {round} tput ([0-9.]+) ([0-9.]+) (\d+)");
                if (!ping.Success || !tput.Success) throw new InvalidOperationException($"round {round} measured nothing:\n{lines[^Math.Min(lines.Length, 2000)..]}");
                var seconds = double.Parse(tput.Groups[2].Value, CultureInfo.InvariantCulture) - double.Parse(tput.Groups[1].Value, CultureInfo.InvariantCulture);
                return (double.Parse(ping.Groups[1].Value, CultureInfo.InvariantCulture),
                    double.Parse(tput.Groups[3].Value, CultureInfo.InvariantCulture) / 1024.0 / seconds);
            }
            await Task.Delay(500);
        }
        throw new TimeoutException("the client guest finished no round within 5 minutes");
    }

    private static IEnumerable<(int Round, bool Ended)> Rounds(string console) => !File.Exists(console)
        ? []
        : Rx.Matches(ReadShared(console), @"KRAUD-BENCH round (\d+) (start|end)")
            .Select(m => (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value == "end"));

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    private sealed record WrkResult(double Rps, double P99Ms, int Errors);

    private static WrkResult Wrk(string? ns, string url, string? host, int seconds)
    {
        List<string> args = ["-t1", "-c8", $"-d{seconds}s", "--latency", url];
        if (host is not null) args.InsertRange(0, ["-H", $"Host: {host}"]);
        var output = ns is null ? NetCommand.Run("wrk", args) : NetCommand.InNamespace(ns, "wrk", args);
        var rps = double.Parse(Rx.Match(output, @"Requests/sec:\s+([0-9.]+)").Groups[1].Value, CultureInfo.InvariantCulture);
        var p99 = Rx.Match(output, @"99%\s+([0-9.]+)(us|ms|s)");
        var value = double.Parse(p99.Groups[1].Value, CultureInfo.InvariantCulture) * p99.Groups[2].Value switch { "us" => 0.001, "s" => 1000, _ => 1 };
        var errors = Rx.Match(output, @"Non-2xx or 3xx responses: (\d+)") is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        if (Rx.Match(output, @"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)") is { Success: true } s)
            errors += Enumerable.Range(1, 4).Sum(i => int.Parse(s.Groups[i].Value, CultureInfo.InvariantCulture));
        return new WrkResult(rps, value, errors);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static MicroVmSpec Spec(Guid tenant, string ip4, string script) => new(Guid.NewGuid(), Guid.NewGuid(), tenant, 0, 0, "busybox",
        ["sh", "-c", script], new Dictionary<string, string>(), 1, 256, 0, false, Ip4: ip4, Ip6: null);

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Kraud.sln not found above the benchmark.");
    }

    /// <summary>Bounded regular expressions over guest and wrk output.</summary>
    private static class Rx
    {
        private static readonly TimeSpan Limit = TimeSpan.FromSeconds(2);

        public static Match Match(string input, string pattern) => Regex.Match(input, pattern, RegexOptions.None, Limit);

        public static MatchCollection Matches(string input, string pattern) => Regex.Matches(input, pattern, RegexOptions.None, Limit);
    }
}

/// <summary>A scratch directory removed when the benchmark ends, however it ends.</summary>
internal sealed class RemovedAtDispose(string directory) : IDisposable
{
    public void Dispose()
    {
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }
}
