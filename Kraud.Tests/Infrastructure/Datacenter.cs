using System.Diagnostics;
using System.Text.Json;
using Kraud.HostRuntime.Network;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A small datacenter on this machine for the data plane specs: an underlay bridge of its own (random name and /24, so
/// other test runs on the machine never meet it) and qemu-microvm host runtime processes with Fleet:Network = wireguard,
/// each in its own network namespace, each in a zone of its own so that a spec chooses the host by the zone. Booted once
/// for the class (the first spec pays), torn down at its end; <see cref="Leftovers"/> names anything of it still there.
/// </summary>
public sealed class Datacenter : IAsyncLifetime, IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly List<DcHost> _hosts = [];
    private readonly List<HostProcess> _processes = [];

    /// <summary>A host of the datacenter and the runtime process that serves it (one process per kind of host).</summary>
    public sealed record DcHost(string Name, string Zone, string Role, HostProcess Process)
    {
        public Guid Id => Kraud.Domain.Fleet.Host.IdFor(Name);

        /// <summary>The host namespace's address on the underlay (derived from its name, as the runtime derives it).</summary>
        public string UnderlayAddress(Datacenter dc)
        {
            var (network, prefix) = Cidr.Parse(dc.UnderlayCidr);
            return Cidr.HostAddress(network, prefix, Name);
        }
    }
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..6];

    public string Bridge => $"kru{_suffix}";

    /// <summary>A random /24 of 100.64.0.0/16 (shared address space, RFC 6598): a route of its own in the machine's namespace.</summary>
    public string UnderlayCidr { get; } = $"100.64.{Random.Shared.Next(0, 256)}.0/24";

    /// <summary>The bridge's own address: the machine, as the hosts see it on the underlay.</summary>
    public string UnderlayGateway => $"{UnderlayCidr[..UnderlayCidr.LastIndexOf('.')]}.1";

    public string State { get; } = Path.Combine(Path.GetTempPath(), $"kraud-dc-{Guid.NewGuid():N}");

    public IReadOnlyList<DcHost> Hosts => _hosts;

    /// <summary>The private CA of the specs' OIDC issuers: the ingress hosts trust it (Fleet:IngressTrustedCaFile).</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2 IssuerCa { get; } = TestOidcIssuer.NewCa();


    /// <summary>One host of the datacenter: which of its zones (0 or 1), its role and driver.</summary>
    /// <param name="Alone">The host runs in a runtime process of its own (others share one per role and driver), so that a
    /// spec can kill it alone (<see cref="KillAsync"/>).</param>
    public sealed record HostSpec(int Zone, string Role = "Compute", string Driver = "qemu-microvm", bool Alone = false);

    /// <summary>
    /// The default layout: zone 0 has two qemu compute hosts (a pod of two replicas spans them) and two ingress hosts, zone 1
    /// one compute host, one ingress host (an ingress's 2N+1 = 3 replicas span both zones) and three qemu storage hosts (a
    /// BLOCK volume's replicas, served from their namespaces over the underlay).
    /// </summary>
    public static readonly IReadOnlyList<HostSpec> DefaultLayout =
    [
        new(0), new(0), new(1), new(0, "Ingress", "simulated"), new(0, "Ingress", "simulated"), new(1, "Ingress", "simulated"),
        new(1, "Storage"), new(1, "Storage"), new(1, "Storage"),
    ];

    public string Zone(int index) => $"dc{index}-{_suffix}";

    /// <summary>Starts the bridge and the hosts (in parallel) the first time a spec asks.</summary>
    public async Task<Datacenter> StartAsync(ProcessFleetApp app, IReadOnlyList<HostSpec>? layout = null)
    {
        await _gate.WaitAsync();
        try
        {
            if (_hosts.Count > 0) return this;
            layout ??= DefaultLayout;
            // Built here (or found in the cache), not by the first boot inside its timeout.
            if (layout.Any(h => h.Driver == "qemu-microvm"))
                await new Kraud.HostRuntime.Drivers.Qemu.GuestImageBuilder(QemuFixture.GuestDirectory).EnsureAsync(CancellationToken.None);
            Run("ip", "link", "add", Bridge, "type", "bridge");
            Run("ip", "addr", "add", $"{UnderlayGateway}/24", "dev", Bridge);
            Run("ip", "link", "set", Bridge, "up");
            Directory.CreateDirectory(State);
            var issuerCa = Path.Combine(State, "oidc-ca.pem");
            await File.WriteAllTextAsync(issuerCa, IssuerCa.ExportCertificatePem());
            var environment = new Dictionary<string, string>
            {
                ["Fleet__IngressTrustedCaFile"] = issuerCa,
                ["Fleet__Network"] = "wireguard",
                ["Fleet__Underlay"] = Bridge,
                ["Fleet__UnderlayCidr"] = UnderlayCidr,
                ["Fleet__Qemu__StateDirectory"] = State,
                ["Fleet__Qemu__GuestDirectory"] = QemuFixture.GuestDirectory,
                ["Fleet__Qemu__MaxMemoryMiB"] = "256",
                ["Fleet__Qemu__MaxCpus"] = "1",
                ["Fleet__Qemu__MaxEphemeralMiB"] = "64",
                // 1 GiB volumes become 96 MiB replicas.
                ["Fleet__Qemu__MaxVolumeMiB"] = "96",
                ["Fleet__Qemu__BootTimeoutSeconds"] = "120",
                // This machine kind's KVM runs no guest (see the README): hosts probing it at once cost each 5 s of a start that
                // already competes for two cores.
                ["Fleet__Qemu__Kvm"] = "false",
            };
            // A host's underlay address is derived from its name (a hash into the /24), so two names can land on one address:
            // both namespaces would then answer ARP for it, and a client would reach the wrong host (CI saw every ingress
            // replica refuse connections). Names are drawn until each has an address of its own.
            var (network, prefix) = Cidr.Parse(UnderlayCidr);
            var addresses = new HashSet<string>();
            string NewName(HostSpec h, int i)
            {
                while (true)
                {
                    var name = $"{char.ToLowerInvariant(h.Role[0])}{i}-{Guid.NewGuid():N}"[..12];
                    if (addresses.Add(Cidr.HostAddress(network, prefix, name))) return name;
                }
            }
            var named = layout.Select((h, i) => (Spec: h, Name: NewName(h, i))).ToList();
            // One runtime process per kind of host (each host its own namespace), started one after the other: six cold .NET
            // processes at once on two cores (Wolverine compiling its handlers, the control plane its own for every first
            // announcement) kept hosts from registering within a minute.
            foreach (var group in named.GroupBy(h => (h.Spec.Role, h.Spec.Driver, Alone: h.Spec.Alone ? h.Name : null)))
            {
                var process = HostProcess.StartRack(app, group.Select(h => (h.Name, Zone(h.Spec.Zone), h.Spec.Role, h.Spec.Driver)).ToList(), environment);
                _processes.Add(process);
                var hosts = group.Select(h => new DcHost(h.Name, Zone(h.Spec.Zone), h.Spec.Role, process)).ToList();
                _hosts.AddRange(hosts);
                try
                {
                    await Task.WhenAll(hosts.Select(h => h.Process.WaitUntilRegisteredAsync(app, h.Name)));
                }
                catch (TimeoutException e)
                {
                    throw new TimeoutException(e.Message + "\n" + string.Join("\n", _processes.Select(p => $"--- {p.Name}:\n{p.OutputTail()}")), e);
                }
            }
            return this;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Tenant A's web pod of the datacenter's specs: two microVMs (zone 0) whose busybox httpd serves a marker, and at
    /// /cgi-bin/who the user an ingress named in X-Kraud-User. Made once.</summary>
    public sealed record WebPod(TenantScope Tenant, string PodId, string Marker);

    private WebPod? _web;

    public async Task<WebPod> WebAsync(ProcessFleetApp app)
    {
        await _gate.WaitAsync();
        try
        {
            if (_web is not null) return _web;
            var tenant = await TenantScope.CreateAsync(app, "dpa");
            var marker = $"KRAUD-MARKER-{Guid.NewGuid():N}";
            var script = $"mkdir -p /www/cgi-bin && echo {marker} > /www/index.html && " +
                         "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \"user=$HTTP_X_KRAUD_USER\"\\n' > /www/cgi-bin/who && " +
                         "chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www";
            var pod = (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
            {
                @in = new { name = "web", image = "busybox", cpu = 1, memoryMiB = 256, replicas = 2, zone = Zone(0), command = new[] { "sh", "-c", script } },
            })).ShouldSucceed().Data.GetProperty("createPod").Id();
            await tenant.WaitForPodAsync(pod, "RUNNING", 240);
            return _web = new WebPod(tenant, pod, marker);
        }
        finally
        {
            _gate.Release();
        }
    }

    private readonly List<Client> _clients = [];

    /// <summary>
    /// A machine on the underlay that is none of the hosts (a client from outside, as the datacenter's network delivers it):
    /// a namespace of its own with a veth on the bridge and an address of the underlay no host has. Removed when disposed.
    /// </summary>
    public Client NewClient()
    {
        lock (_clients)
        {
            var (network, prefix) = Cidr.Parse(UnderlayCidr);
            var taken = _hosts.Select(h => Cidr.HostAddress(network, prefix, h.Name)).Concat(_clients.Select(c => c.Address)).ToHashSet();
            var address = Enumerable.Range(200, 54).Select(i => Cidr.Offset(network, (uint)i)).First(a => !taken.Contains(a));
            var client = new Client($"krq{_suffix}{_clients.Count}", address);
            Run("ip", "netns", "add", client.Namespace);
            Check(Run("ip", "link", "add", client.Namespace, "type", "veth", "peer", "name", "eth0", "netns", client.Namespace));
            Check(Run("ip", "link", "set", client.Namespace, "master", Bridge, "up"));
            Check(Run("ip", "-n", client.Namespace, "addr", "add", $"{address}/{prefix}", "dev", "eth0"));
            Check(Run("ip", "-n", client.Namespace, "link", "set", "eth0", "up"));
            Check(Run("ip", "-n", client.Namespace, "link", "set", "lo", "up"));
            _clients.Add(client);
            return client;
        }
    }

    private static void Check((int ExitCode, string Output) result)
    {
        if (result.ExitCode != 0) throw new InvalidOperationException(result.Output);
    }

    /// <summary>A client namespace (<see cref="NewClient"/>); its veth's root end has the namespace's name.</summary>
    public sealed record Client(string Namespace, string Address) : IDisposable
    {
        /// <summary>Sends packets for <paramref name="destination"/> to the underlay, on-link or through <paramref name="via"/>.</summary>
        public void Route(string destination, string? via = null) =>
            Check(via is null ? Run("ip", "-n", Namespace, "route", "replace", destination, "dev", "eth0")
                : Run("ip", "-n", Namespace, "route", "replace", destination, "via", via));

        /// <summary>GET / over a TCP connection of this client: the answer, or why there was none (a dropped SYN times out).</summary>
        public async Task<string> HttpGetAsync(string address, int port, TimeSpan? timeout = null)
        {
            using var socket = Netns.Socket(Namespace, System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream,
                System.Net.Sockets.ProtocolType.Tcp);
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(4));
            try
            {
                await socket.ConnectAsync(System.Net.IPAddress.Parse(address), port, cts.Token);
                await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes($"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n"), cts.Token);
                var answer = new MemoryStream();
                var buffer = new byte[4096];
                int read;
                while ((read = await socket.ReceiveAsync(buffer, cts.Token)) > 0) answer.Write(buffer, 0, read);
                return System.Text.Encoding.ASCII.GetString(answer.ToArray());
            }
            catch (OperationCanceledException)
            {
                return "no answer (timed out)";
            }
            catch (System.Net.Sockets.SocketException e)
            {
                return $"no answer ({e.SocketErrorCode})";
            }
        }

        public void Dispose() => Run("ip", "netns", "del", Namespace);
    }

    public string ConsoleOf(DcHost host, string vmId) => Path.Combine(State, "hosts", host.Name, "console", $"{vmId}.log");

    public DcHost HostOf(JsonElement instance) => _hosts.Single(h => h.Id.ToString() == instance.GetProperty("hostId").GetString());

    /// <summary>
    /// Lines a guest printed with this prefix so far: on its console (its init) or, from its workload, on stdout and stderr
    /// (the host's CRI-format log file of the microVM: time, stream, tag, line).
    /// </summary>
    public async Task<IReadOnlyList<string>> ConsoleLinesAsync(JsonElement instance, string prefix)
    {
        var host = HostOf(instance);
        var vmId = instance.GetProperty("id").GetString()!;
        var console = await ReadSharedAsync(ConsoleOf(host, vmId));
        var workload = (await ReadSharedAsync(Path.Combine(State, "hosts", host.Name, "logs", $"{vmId}.log")))
            .Select(l => l.Split(' ', 4)).Where(f => f.Length == 4).Select(f => f[3]);
        return console.Concat(workload).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    private static async Task<IReadOnlyList<string>> ReadSharedAsync(string path)
    {
        if (!File.Exists(path)) return [];
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var text = await new StreamReader(stream).ReadToEndAsync();
        return text.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
    }

    /// <summary>The end of a guest's console, for failure messages.</summary>
    public async Task<string> ConsoleTailAsync(JsonElement instance, int lines = 40)
    {
        var all = await ConsoleLinesAsync(instance, "");
        return $"console of {instance.GetProperty("id").GetString()}:\n" + string.Join('\n', all.TakeLast(lines));
    }

    /// <summary>What of this datacenter's hosts is still on the machine: namespaces, veths, wireguard-go devices and processes.</summary>
    public IReadOnlyList<string> Leftovers()
    {
        var left = new List<string>();
        foreach (var host in _hosts)
        {
            var ns = HostNamespace.NamespaceName(host.Name);
            var hash = HostNamespace.HashOf(ns);
            if (File.Exists($"/var/run/netns/{ns}")) left.Add($"network namespace {ns}");
            if (Directory.Exists($"/sys/class/net/krv{hash}")) left.Add($"veth krv{hash}");
            if (File.Exists($"/var/run/wireguard/krw{hash}.sock")) left.Add($"wireguard-go socket krw{hash}");
            left.AddRange(ProcessesNaming($"krw{hash}").Select(pid => $"wireguard-go process {pid}"));
        }
        return left;
    }

    /// <summary>Processes whose command line holds this (unique, per run) name.</summary>
    public static IReadOnlyList<int> ProcessesNaming(string name)
    {
        var found = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), System.Globalization.CultureInfo.InvariantCulture, out var pid)) continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0').Contains(name) && Kraud.HostRuntime.Drivers.Qemu.ProcessExit.IsAlive(pid))
                    found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    /// <summary>
    /// A host dies: its runtime process (which runs it alone, see <see cref="HostSpec.Alone"/>) is SIGKILLed with its QEMUs and
    /// wireguard-go, and what the machine kept of it (its namespace with its underlay address, its veth) goes, as the network
    /// loses a host whose power is cut.
    /// </summary>
    public async Task KillAsync(DcHost host)
    {
        if (_hosts.Count(h => h.Process == host.Process) != 1) throw new InvalidOperationException($"host {host.Name} shares its runtime process");
        await host.Process.KillAsync();
        RemoveMachineState(host);
    }

    /// <summary>What the machine keeps of a host: its wireguard-go (by its unique device name), namespace, veth and socket.</summary>
    private static void RemoveMachineState(DcHost host)
    {
        var ns = HostNamespace.NamespaceName(host.Name);
        var hash = HostNamespace.HashOf(ns);
        foreach (var pid in ProcessesNaming($"krw{hash}")) Run("kill", "-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Run("ip", "netns", "del", ns);
        Run("ip", "link", "del", $"krv{hash}");
        File.Delete($"/var/run/wireguard/krw{hash}.sock");
    }

    /// <summary>Stops every host runtime as an operator would (SIGTERM: it removes what it made), then the bridge.</summary>
    public async Task StopHostsAsync()
    {
        await Task.WhenAll(_processes.Select(p => p.StopAsync()));
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();

    public async Task DisposeAsync()
    {
        if (_hosts.Count == 0) return;
        await StopHostsAsync();
        var left = Leftovers();
        // Whatever a failed stop left is removed all the same (by its unique name or pid), so the machine stays clean.
        foreach (var host in _hosts) RemoveMachineState(host);
        foreach (var process in _processes) await process.DisposeAsync();
        foreach (var client in _clients) client.Dispose();
        Run("ip", "link", "del", Bridge);
        StateDirectories.Remove(State);
        if (left.Count > 0) throw new InvalidOperationException($"The host runtimes left behind: {string.Join(", ", left)}");
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public static (int ExitCode, string Output) Run(string file, params string[] args)
    {
        var result = Kraud.HostRuntime.Drivers.Qemu.ProcessRunner.Run(file, args, TimeSpan.FromSeconds(60));
        return (result.ExitCode, result.Output + result.Error);
    }
}
