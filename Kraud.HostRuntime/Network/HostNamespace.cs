using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Network;
using Kraud.HostRuntime.Configuration;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The real network of one host (Fleet:Network = wireguard): a Linux network namespace joined to the underlay bridge by a
/// veth pair, with the host's underlay address, a wireguard-go device (userspace WireGuard: this machine kind has no
/// kernel module) that carries every VPC packet to other hosts, a tap per microVM, the tenants' resolver at each
/// overlay's .1 and an nftables table that keeps tenants apart. The host runtime itself stays in the machine's own
/// namespace (its database and queues are there); what runs inside is wireguard-go, the QEMUs and the resolver's
/// socket. Everything is made at start and removed at stop. Names that live outside the namespace (the veth's root end,
/// the wireguard-go device, whose control socket is /var/run/wireguard/&lt;name&gt;.sock for every namespace) carry a
/// hash of the namespace name, so hosts of different fleets on one machine never collide.
/// </summary>
public sealed class HostNamespace : IDisposable
{
    /// <summary>Inside the namespace: the underlay end of the veth pair.</summary>
    public const string UnderlayDevice = "ul0";

    /// <summary>Every microVM's tap starts so: the firewall tells guest traffic by it.</summary>
    public const string TapPrefix = "kt";

    /// <summary>
    /// Where INGRESS hosts' proxies reach the VPCs from: one /32 per ingress host on its WireGuard device, outside every VPC
    /// (10.0.0.0/8, fd00::/8) and the underlay, derived from its underlay address so it is unique wherever that is.
    /// </summary>
    public const string IngressTunnelRange = "100.96.0.0/16";

    /// <summary>wireguard-go's MTU: guests use it too, so that no packet needs fragments inside the tunnel.</summary>
    public const int Mtu = 1420;

    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, GuestNic> _nics = [];
    private readonly Dictionary<(Guid VmId, Guid IngressId), ApplyFirewall> _exposures = [];
    private readonly HashSet<string> _publicAddresses = [];
    private Process? _wireguardGo;
    private Underlay? _underlay;
    private ServiceDiscoveryResolver? _resolver;
    private int _disposed;

    private HostNamespace(string hostName, string name, string hash, string underlayAddress, int prefixLength, ILogger logger)
    {
        HostName = hostName;
        Name = name;
        VethRoot = "krv" + hash;
        WireGuardDevice = "krw" + hash;
        UnderlayAddress = underlayAddress;
        UnderlayPrefixLength = prefixLength;
        _logger = logger;
    }

    public string HostName { get; }

    /// <summary>The network namespace (ip netns), "kr-&lt;host&gt;".</summary>
    public string Name { get; }

    public string VethRoot { get; }
    public string WireGuardDevice { get; }
    public string UnderlayAddress { get; }
    public int UnderlayPrefixLength { get; }

    public int? WireGuardGoPid => _wireguardGo?.Id;

    public ServiceDiscoveryResolver Resolver => _resolver ?? throw new ObjectDisposedException(nameof(HostNamespace));

    public static string NamespaceName(string hostName) => $"kr-{hostName}";

    /// <summary>8 hex characters of the namespace's name: root-visible names stay under Linux's 15 characters.</summary>
    public static string HashOf(string namespaceName) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(namespaceName)))[..8];

    /// <summary>Makes the namespace and everything in it; a namespace of the same name left by a crashed runtime is replaced.</summary>
    public static HostNamespace Start(FleetOptions fleet, HostDefinition host, string privateKey, ILogger logger)
    {
        foreach (var (tool, package) in new[] { ("ip", "iproute2"), ("wireguard-go", "wireguard-go"), ("wg", "wireguard-tools"), ("nft", "nftables") })
            if (Drivers.Qemu.ProcessRunner.Which(tool) is null)
                throw new InvalidOperationException($"Fleet:Network = wireguard needs {tool}: apt-get install {package}.");
        var (network, prefix) = Cidr.Parse(fleet.UnderlayCidr);
        var name = NamespaceName(host.Name);
        var address = host.UnderlayAddress ?? Cidr.HostAddress(network, prefix, host.Name);
        var ns = new HostNamespace(host.Name, name, HashOf(name), address, prefix, logger);
        try
        {
            ns.Create(fleet, privateKey);
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    private void Create(FleetOptions fleet, string privateKey)
    {
        _underlay = Underlay.Join(_logger, fleet.Underlay, fleet.UnderlayCidr);
        if (File.Exists(Netns.PathOf(Name)))
        {
            _logger.LogWarning("Network namespace {Namespace} is left from an earlier run of host {Host}; making it anew", Name, HostName);
            NetCommand.Run("ip", ["netns", "del", Name], allowFailure: true);
        }
        NetCommand.Run("ip", ["link", "del", VethRoot], allowFailure: true);
        NetCommand.Run("ip", ["netns", "add", Name]);
        NetCommand.Run("ip", ["link", "add", VethRoot, "type", "veth", "peer", "name", UnderlayDevice, "netns", Name]);
        NetCommand.Run("ip", ["link", "set", VethRoot, "master", fleet.Underlay, "up"]);
        Ip("addr", "add", $"{UnderlayAddress}/{UnderlayPrefixLength}", "dev", UnderlayDevice);
        Ip("link", "set", UnderlayDevice, "up");
        Ip("link", "set", "lo", "up");
        // The namespace routes between its taps and its WireGuard device.
        NetCommand.InNamespace(Name, "sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);

        StartWireGuard(privateKey);
        NetCommand.InNamespace(Name, "nft", ["-f", "-"], NamespaceFirewall.Ruleset(fleet.UnderlayCidr));
        _resolver = ServiceDiscoveryResolver.Start(Name, _logger);
        _logger.LogInformation("Host {Host}: network namespace {Namespace}, underlay {Address}/{Prefix} on {Bridge}, WireGuard device {Device} (wireguard-go pid {Pid})",
            HostName, Name, UnderlayAddress, UnderlayPrefixLength, fleet.Underlay, WireGuardDevice, _wireguardGo?.Id);
    }

    private void StartWireGuard(string privateKey)
    {
        var socket = $"/var/run/wireguard/{WireGuardDevice}.sock";
        var start = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // ip netns exec execs wireguard-go: the pid is wireguard-go's own. -f keeps it in the foreground, so it is ours to stop.
        foreach (var arg in new[] { "netns", "exec", Name, "wireguard-go", "-f", WireGuardDevice }) start.ArgumentList.Add(arg);
        start.Environment["LOG_LEVEL"] = "error";
        // A Process, not CliWrap: wireguard-go lives as long as the namespace and is ended by Dispose.
        _wireguardGo = Process.Start(start) ?? throw new InvalidOperationException("wireguard-go did not start.");
        _wireguardGo.OutputDataReceived += (_, e) => { if (e.Data is not null) _logger.LogDebug("wireguard-go {Device}: {Line}", WireGuardDevice, e.Data); };
        _wireguardGo.ErrorDataReceived += (_, e) => { if (e.Data is not null) _logger.LogWarning("wireguard-go {Device}: {Line}", WireGuardDevice, e.Data); };
        _wireguardGo.BeginOutputReadLine();
        _wireguardGo.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (_wireguardGo.HasExited) throw new InvalidOperationException($"wireguard-go {WireGuardDevice} exited with code {_wireguardGo.ExitCode} at start.");
            if (deadline.Elapsed > TimeSpan.FromSeconds(20)) throw new TimeoutException($"wireguard-go made no device {WireGuardDevice} within 20 s.");
            Thread.Sleep(20);
        }
        // The private key goes through a pipe, never a file or a command line.
        NetCommand.InNamespace(Name, "wg", ["set", WireGuardDevice, "listen-port", WireGuardInterface.ListenPort.ToString(CultureInfo.InvariantCulture),
            "private-key", "/dev/stdin"], privateKey + "\n");
        Ip("link", "set", WireGuardDevice, "up");
        // Every VPC address is behind the WireGuard device unless a tap of this host holds it (a /32 or /128 is more specific);
        // wireguard-go sends a packet only to the peer whose allowed IPs hold its destination, and drops the rest.
        Ip("route", "add", "10.0.0.0/8", "dev", WireGuardDevice);
        Ip("-6", "route", "add", "fd00::/8", "dev", WireGuardDevice);
        Ip("route", "add", IngressTunnelRange, "dev", WireGuardDevice);
    }

    /// <summary>This host's address in <see cref="IngressTunnelRange"/>: the last two bytes of its underlay address.</summary>
    public string IngressTunnelAddress
    {
        get
        {
            var b = IPAddress.Parse(UnderlayAddress).GetAddressBytes();
            return $"100.96.{b[2]}.{b[3]}";
        }
    }

    /// <summary>
    /// A command as it runs on a host: inside its namespace when it has one (ip netns exec execs the command, so the pid
    /// stays the command's), as it is otherwise.
    /// </summary>
    public static (string File, IReadOnlyList<string> Args) Command(HostNamespace? network, string file, IEnumerable<string> args) =>
        network is null ? (file, args.ToList()) : ("ip", ["netns", "exec", network.Name, file, .. args]);

    /// <summary>An INGRESS host's proxy connects into the VPCs from its tunnel address (the only address of its WireGuard device).</summary>
    public void UseIngressTunnel() => Ip("addr", "add", $"{IngressTunnelAddress}/32", "dev", WireGuardDevice);

    /// <summary>Loads a peer set rendered by <see cref="WireGuardInterface.Render"/> into the device.</summary>
    public void ApplyWireGuard(string configuration)
    {
        // wg syncconf takes wg's own keys only; Table is wg-quick's.
        var plain = string.Join('\n', configuration.Split('\n').Where(l => !l.StartsWith("Table", StringComparison.Ordinal)));
        NetCommand.InNamespace(Name, "wg", ["syncconf", WireGuardDevice, "/dev/stdin"], plain);
    }

    /// <summary>
    /// A tap for the microVM, with the gateway addresses of its overlay on the host's end and routes to the guest's
    /// addresses; what the guest's init needs to configure its side goes on the kernel command line.
    /// </summary>
    public GuestNic Attach(MicroVmSpec spec)
    {
        if (spec.Ip4 is null) throw new InvalidOperationException($"microVM {spec.VmId} has no VPC address; the control plane leases one with its placement.");
        var tap = TapPrefix + spec.VmId.ToString("N")[..8];
        var gateway4 = Ipam.Ipv4Gateway(spec.Ip4);
        var gateway6 = spec.Ip6 is null ? null : Ipam.Ipv6Gateway(spec.Ip6);
        // A locally administered MAC of the VM id: two guests on one tap segment never share one.
        var id = spec.VmId.ToByteArray();
        var mac = $"52:54:{id[0]:x2}:{id[1]:x2}:{id[2]:x2}:{id[3]:x2}";
        var nic = new GuestNic(spec.VmId, spec.TenantId, tap, mac, spec.Ip4, gateway4, spec.Ip6, gateway6);
        lock (_lock)
        {
            TryIp("link", "del", tap);
            Ip("tuntap", "add", "dev", tap, "mode", "tap");
            Ip("link", "set", tap, "mtu", Mtu.ToString(CultureInfo.InvariantCulture), "up");
            Ip("addr", "add", $"{gateway4}/32", "dev", tap);
            Ip("route", "add", $"{spec.Ip4}/32", "dev", tap);
            if (spec.Ip6 is not null)
            {
                Ip("-6", "addr", "add", $"{gateway6}/128", "dev", tap, "nodad");
                Ip("-6", "route", "add", $"{spec.Ip6}/128", "dev", tap);
            }
            _nics[spec.VmId] = nic;
            // An exposure may have arrived before the microVM booted (the control plane sends it with the boot).
            if (_exposures.Keys.Any(k => k.VmId == spec.VmId)) ApplyExposures();
        }
        return nic;
    }

    public void Detach(Guid vmId)
    {
        lock (_lock)
        {
            if (!_nics.Remove(vmId, out var nic)) return;
            TryIp("link", "del", nic.Tap);
            if (_exposures.Keys.Any(k => k.VmId == vmId)) ApplyExposures();
        }
    }

    /// <summary>
    /// A DIRECT ingress exposes a microVM of this host (an empty rule list ends that). The public address goes on the
    /// underlay device, so the datacenter's network reaches it here as it would a floating address; the translation and
    /// the tenant's rules go into nftables (<see cref="NamespaceFirewall.Exposures"/>).
    /// </summary>
    public void Expose(ApplyFirewall command)
    {
        lock (_lock)
        {
            if (command.Rules.Count == 0) _exposures.Remove((command.VmId, command.IngressId));
            else _exposures[(command.VmId, command.IngressId)] = command;
            ApplyExposures();
        }
    }

    private void ApplyExposures()
    {
        // One microVM per public address and port: the first of the ingress's microVMs that runs here (a pod of several
        // replicas is exposed through one of them; a DIRECT ingress has no balancer).
        var live = _exposures.Values.Where(e => _nics.ContainsKey(e.VmId))
            .GroupBy(e => (e.PublicAddress, e.PublicPort, e.Protocol)).Select(g => g.OrderBy(e => e.VmId).First())
            .Select(e => (e, _nics[e.VmId].Ip4)).ToList();
        // Addresses leave before their rules and arrive after them: a port that answers has its address and rules in
        // place, and a port that no longer answers has already given its address back.
        var wanted = live.Select(l => l.e.PublicAddress).ToHashSet();
        foreach (var address in _publicAddresses.Except(wanted).ToList())
        {
            TryIp("addr", "del", $"{address}/32", "dev", UnderlayDevice);
            _publicAddresses.Remove(address);
        }
        NetCommand.InNamespace(Name, "nft", ["-f", "-"], NamespaceFirewall.Exposures(live));
        foreach (var address in wanted.Except(_publicAddresses).ToList())
        {
            Ip("addr", "add", $"{address}/32", "dev", UnderlayDevice);
            _publicAddresses.Add(address);
        }
    }

    /// <summary>The tenants whose microVMs run here: their resolver tables and which addresses may talk to which.</summary>
    public void ApplyServiceDiscovery(ApplyServiceDiscovery command)
    {
        Resolver.Apply(command);
        NetCommand.InNamespace(Name, "nft", ["-f", "-"], NamespaceFirewall.TenantSets(command.Tenants));
    }

    private void Ip(params string[] args) => NetCommand.Run("ip", ["-n", Name, .. args]);

    private void TryIp(params string[] args) => NetCommand.Run("ip", ["-n", Name, .. args], allowFailure: true);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _resolver?.Dispose();
        if (_wireguardGo is { } wg)
        {
            // Its device and socket are gone only with it: a namespace of the same name made next must not meet them.
            Drivers.Qemu.ProcessExit.KillAsync(wg, $"wireguard-go {WireGuardDevice}", _logger).GetAwaiter().GetResult();
            wg.Dispose();
        }
        // Deleting the namespace deletes its taps, its end of the veth pair and so the root end too.
        NetCommand.Run("ip", ["netns", "del", Name], allowFailure: true);
        NetCommand.Run("ip", ["link", "del", VethRoot], allowFailure: true);
        var socket = $"/var/run/wireguard/{WireGuardDevice}.sock";
        if (File.Exists(socket)) File.Delete(socket);
        _underlay?.Leave();
    }

}

/// <summary>A microVM's network device as both ends see it.</summary>
public sealed record GuestNic(Guid VmId, Guid TenantId, string Tap, string Mac, string Ip4, string Gateway4, string? Ip6, string? Gateway6)
{
    /// <summary>What the guest's init reads: kraud.net=ip4,gateway4[,ip6,gateway6] and the MTU.</summary>
    public string KernelArguments => Ip6 is null
        ? $"kraud.net={Ip4},{Gateway4} kraud.mtu={HostNamespace.Mtu}"
        : $"kraud.net={Ip4},{Gateway4},{Ip6},{Gateway6} kraud.mtu={HostNamespace.Mtu}";
}

/// <summary>
/// The underlay bridge in the machine's own namespace. A runtime that finds none makes it (with the CIDR's first address, so
/// the machine itself reaches the hosts, as a top-of-rack router would) and removes it when it leaves last.
/// </summary>
public sealed class Underlay
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, (Underlay Bridge, int Users)> Joined = [];
    private readonly ILogger _logger;

    private Underlay(string name, bool created, ILogger logger)
    {
        Name = name;
        Created = created;
        _logger = logger;
    }

    public string Name { get; }

    /// <summary>This process made the bridge, so it removes it when the last host leaves and no other process's host is on it.</summary>
    public bool Created { get; }

    public static Underlay Join(ILogger logger, string name, string cidr)
    {
        lock (Gate)
        {
            if (Joined.TryGetValue(name, out var joined))
            {
                Joined[name] = (joined.Bridge, joined.Users + 1);
                return joined.Bridge;
            }
            var created = false;
            if (!Directory.Exists($"/sys/class/net/{name}"))
            {
                var (network, prefix) = Cidr.Parse(cidr);
                NetCommand.Run("ip", ["link", "add", name, "type", "bridge"]);
                NetCommand.Run("ip", ["addr", "add", $"{Cidr.Offset(network, 1)}/{prefix}", "dev", name]);
                NetCommand.Run("ip", ["link", "set", name, "up"]);
                created = true;
                logger.LogInformation("Made underlay bridge {Bridge} ({Cidr})", name, cidr);
            }
            var bridge = new Underlay(name, created, logger);
            Joined[name] = (bridge, 1);
            return bridge;
        }
    }

    public void Leave()
    {
        lock (Gate)
        {
            if (!Joined.TryGetValue(Name, out var joined)) return;
            if (joined.Users > 1)
            {
                Joined[Name] = (joined.Bridge, joined.Users - 1);
                return;
            }
            Joined.Remove(Name);
            var members = Directory.Exists($"/sys/class/net/{Name}/brif") ? Directory.GetFileSystemEntries($"/sys/class/net/{Name}/brif").Length : 0;
            if (Created && members == 0)
            {
                NetCommand.Run("ip", ["link", "del", Name], allowFailure: true);
                _logger.LogInformation("Removed underlay bridge {Bridge}", Name);
            }
        }
    }
}

/// <summary>IPv4 prefixes of the underlay.</summary>
public static class Cidr
{
    public static (uint Network, int Prefix) Parse(string cidr)
    {
        var parts = cidr.Split('/');
        if (parts.Length != 2 || !IPAddress.TryParse(parts[0], out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
            || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var prefix) || prefix is < 8 or > 30)
            throw new InvalidOperationException($"'{cidr}' is not an IPv4 prefix between /8 and /30 (Fleet:UnderlayCidr).");
        var b = address.GetAddressBytes();
        var value = ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
        var mask = prefix == 0 ? 0 : uint.MaxValue << (32 - prefix);
        return (value & mask, prefix);
    }

    public static string Offset(uint network, uint offset)
    {
        var v = network + offset;
        return $"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}";
    }

    /// <summary>A host's default underlay address: hashed from its name over the prefix, never .0, .1 (the bridge) or broadcast.</summary>
    public static string HostAddress(uint network, int prefix, string hostName)
    {
        var size = 1u << (32 - prefix);
        var hash = BitConverter.ToUInt32(SHA256.HashData(Encoding.UTF8.GetBytes(hostName)), 0);
        return Offset(network, 2 + hash % (size - 3));
    }
}
