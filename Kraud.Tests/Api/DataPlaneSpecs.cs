using System.Diagnostics;
using System.Text.Json;
using Kraud.HostRuntime.Network;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>
/// The data plane with real guests (issue 16): qemu-microvm host runtime processes, each in its own network namespace on
/// an underlay bridge, carry VPC traffic between their microVMs through wireguard-go, serve the tenants' names and keep
/// tenants apart with nftables. One datacenter is booted for the class.
/// </summary>
[Collection(ProcessFleetCollection.Name)]
public sealed class DataPlaneSpecs(ProcessFleetApp app, Datacenter datacenter) : IClassFixture<Datacenter>
{
    [Fact]
    public async Task a_pod_on_another_host_fetches_a_marker_by_vpc_address_and_by_name_only_through_wireguard_and_another_tenant_cannot()
    {
        var dc = await datacenter.StartAsync(app);
        var (a, b) = (await TenantScope.CreateAsync(app, "dpa"), await TenantScope.CreateAsync(app, "dpb"));
        var marker = $"KRAUD-MARKER-{Guid.NewGuid():N}";

        var web = await CreatePodAsync(a, "web", dc.Zones[0], $"mkdir -p /www && echo {marker} > /www/index.html && exec httpd -f -p 80 -h /www");
        var webVm = Assert.Single((await a.WaitForPodAsync(web.Id(), "RUNNING", 180)).Instances());
        var ip = webVm.GetProperty("ip4").GetString()!;
        // Something on the machine itself, behind the underlay (where the host runtimes and PostgreSQL are): guests must not reach it.
        using var machine = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Any, 0);
        machine.Start();
        var underlay = $"{dc.UnderlayGateway}:{((System.Net.IPEndPoint)machine.LocalEndpoint).Port}";
        _ = ServeAsync(machine, "UNDERLAY-REACHED");
        var hostNs = HostNamespace.NamespaceName(dc.Hosts[1].Name);
        Assert.Contains("UNDERLAY-REACHED", Datacenter.Run("ip", "netns", "exec", hostNs, "busybox", "wget", "-q", "-O", "-", $"http://{underlay}/").Output);

        // Both clients boot at once, on the other host: tenant A's own, and tenant B's, which knows A's address.
        var clients = await Task.WhenAll(
            CreatePodAsync(a, "client", dc.Zones[1], Fetcher("a", ip)),
            CreatePodAsync(b, "client", dc.Zones[1], Fetcher("b", ip, underlay)));
        var running = await Task.WhenAll(a.WaitForPodAsync(clients[0].Id(), "RUNNING", 180), b.WaitForPodAsync(clients[1].Id(), "RUNNING", 180));
        var (clientA, clientB) = (Assert.Single(running[0].Instances()), Assert.Single(running[1].Instances()));
        Assert.NotEqual(dc.HostOf(webVm).Name, dc.HostOf(clientA).Name);
        Assert.Equal(dc.HostOf(clientA).Name, dc.HostOf(clientB).Name);

        await Eventually.Until(async () => (await Fetched(dc, clientA, "a by-ip", marker)) > 0 && (await Fetched(dc, clientA, "a by-name", marker)) > 0,
            TimeSpan.FromSeconds(90), "tenant A's client fetched the marker by address and by name");

        // Watch the underlay while the client fetches again: only WireGuard's UDP crosses it, and never the marker.
        var capture = Path.Combine(dc.State, $"underlay-{Guid.NewGuid():N}.pcap");
        Directory.CreateDirectory(dc.State);
        using (var tcpdump = Process.Start(new ProcessStartInfo("tcpdump", ["-i", dc.Bridge, "-U", "-w", capture, "-s", "0"])
               { RedirectStandardError = true, RedirectStandardOutput = true })!)
        {
            try
            {
                await Task.Delay(1000);
                var (byIp, byName) = (await Fetched(dc, clientA, "a by-ip", marker), await Fetched(dc, clientA, "a by-name", marker));
                await Eventually.Until(async () => await Fetched(dc, clientA, "a by-ip", marker) >= byIp + 2 && await Fetched(dc, clientA, "a by-name", marker) >= byName + 2,
                    TimeSpan.FromSeconds(60), "two more fetches during the capture");
            }
            finally
            {
                Datacenter.Run("kill", "-INT", tcpdump.Id.ToString());
                await tcpdump.WaitForExitAsync();
            }
        }
        var packets = Datacenter.Run("tcpdump", "-r", capture, "-nn", "not arp and not icmp6").Output
            .Split('\n').Where(l => l.Contains(" IP")).ToList();
        Assert.NotEmpty(packets);
        Assert.All(packets, p => Assert.Matches(@"\.51820[ :].*UDP|\.51820 > .*UDP", p));
        Assert.DoesNotContain(marker, Datacenter.Run("tcpdump", "-r", capture, "-nn", "-A").Output);

        // Tenant B asks all along, by A's address and by the same name (each try gives up after 5 s): never an answer with A's marker.
        await Eventually.Until(async () => (await dc.ConsoleLinesAsync(clientB, "KRAUD-TEST b by-name")).Count >= 2, TimeSpan.FromSeconds(90),
            "tenant B's client tried twice");
        var bLines = await dc.ConsoleLinesAsync(clientB, "KRAUD-TEST b ");
        Assert.True(bLines.Count(l => l.StartsWith("KRAUD-TEST b by-ip", StringComparison.Ordinal)) >= 2, await dc.ConsoleTailAsync(clientB));
        Assert.DoesNotContain(bLines, l => l.Contains(marker));
        Assert.Contains(bLines, l => l.StartsWith("KRAUD-TEST b underlay", StringComparison.Ordinal));
        Assert.DoesNotContain(bLines, l => l.Contains("UNDERLAY-REACHED"));
        // Dropped by the host namespace's firewall (its counters say so), not lost on the way.
        Assert.Matches(@"counter packets [1-9]", Datacenter.Run("ip", "netns", "exec", hostNs, "nft", "list", "chain", "inet", "kraud", "forward").Output);
    }

    [Fact]
    public async Task a_host_runtime_with_a_real_network_makes_its_namespace_and_wireguard_device_and_leaves_nothing_when_it_stops()
    {
        await using var lab = new Datacenter();
        await lab.StartAsync(app, hosts: 1, driver: "simulated");
        var host = Assert.Single(lab.Hosts);
        var ns = HostNamespace.NamespaceName(host.Name);
        var device = "krw" + HostNamespace.HashOf(ns);
        Assert.True(File.Exists($"/var/run/netns/{ns}"), $"namespace {ns}");
        var wg = Datacenter.Run("ip", "netns", "exec", ns, "wg", "show", device, "public-key");
        Assert.Equal(0, wg.ExitCode);
        var announced = (await app.AsOperator("{ hosts { id wireguardPublicKey } }")).ShouldSucceed().Data.GetProperty("hosts").EnumerateArray()
            .Single(h => h.GetProperty("id").GetString() == host.Id.ToString()).GetProperty("wireguardPublicKey").GetString();
        Assert.Equal(announced, wg.Output.Trim());
        Assert.Single(Datacenter.ProcessesNaming(device));

        await lab.StopHostsAsync();
        Assert.Empty(lab.Leftovers());
    }

    private static string Fetcher(string who, string ip, string? underlay = null) =>
        $"while true; do " +
        $"echo \"KRAUD-TEST {who} by-ip $(busybox timeout 5 busybox wget -q -O - http://{ip}/ 2>&1 | head -n 1)\"; " +
        $"echo \"KRAUD-TEST {who} by-name $(busybox timeout 5 busybox wget -q -O - http://web/ 2>&1 | head -n 1)\"; " +
        (underlay is null ? "" : $"echo \"KRAUD-TEST {who} underlay $(busybox timeout 5 busybox wget -q -O - http://{underlay}/ 2>&1 | head -n 1)\"; ") +
        "sleep 1; done";

    /// <summary>A bare HTTP answer to whoever connects, until the listener is stopped.</summary>
    private static async Task ServeAsync(System.Net.Sockets.TcpListener listener, string body)
    {
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                var stream = client.GetStream();
                _ = await stream.ReadAsync(new byte[4096]);
                await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Length: {body.Length}\r\n\r\n{body}"));
            }
        }
        catch (Exception e) when (e is ObjectDisposedException or System.Net.Sockets.SocketException or IOException) { }
    }

    private static async Task<int> Fetched(Datacenter dc, JsonElement vm, string what, string marker) =>
        (await dc.ConsoleLinesAsync(vm, $"KRAUD-TEST {what}")).Count(l => l.Contains(marker));

    private static async Task<JsonElement> CreatePodAsync(TenantScope tenant, string name, string zone, string script) =>
        (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
        {
            @in = new { name, image = "busybox", cpu = 1, memoryMiB = 256, zone, command = new[] { "sh", "-c", script } },
        })).ShouldSucceed().Data.GetProperty("createPod");
}
