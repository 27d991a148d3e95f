using System.Text;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The host's WireGuard interface (kraud0): one interface for every VPC whose microVMs run here, since allowed IPs are
/// unique across tenants. Applying a peer set renders the wg-quick configuration and hands it to the device; a revision
/// older than the applied one is ignored, so messages that arrive late or twice change nothing.
/// </summary>
public sealed class WireGuardInterface(WireGuardKeys keys, IWireGuardDevice device)
{
    public const string Name = "kraud0";
    public const int ListenPort = 51820;
    private readonly Lock _lock = new();

    public WireGuardKeys Keys => keys;
    public IWireGuardDevice Device => device;
    public long Revision { get; private set; }
    public IReadOnlyList<WireGuardPeer> Peers { get; private set; } = [];

    /// <returns>false when the revision is not newer than what is applied.</returns>
    public bool Apply(long revision, IReadOnlyList<WireGuardPeer> peers)
    {
        lock (_lock)
        {
            if (revision <= Revision) return false;
            device.Apply(Name, Render(keys.PrivateKey(), peers));
            (Revision, Peers) = (revision, peers);
            return true;
        }
    }

    /// <summary>The wg-quick form (<c>wg-quick up</c> or <c>wg syncconf</c> after stripping the wg-quick keys).</summary>
    public static string Render(string privateKey, IReadOnlyList<WireGuardPeer> peers)
    {
        var text = new StringBuilder()
            .Append("[Interface]\n")
            .Append("PrivateKey = ").Append(privateKey).Append('\n')
            .Append("ListenPort = ").Append(ListenPort).Append('\n')
            // Routes to the microVMs of this host are the taps'; kraud0 carries only traffic to and from other hosts.
            .Append("Table = off\n");
        foreach (var peer in peers)
        {
            text.Append('\n').Append("# ").Append(peer.HostName).Append('\n')
                .Append("[Peer]\n")
                .Append("PublicKey = ").Append(peer.PublicKey).Append('\n');
            if (peer.Endpoint is not null) text.Append("Endpoint = ").Append(peer.Endpoint).Append('\n');
            text.Append("AllowedIPs = ").Append(string.Join(", ", peer.AllowedIps)).Append('\n')
                .Append("PersistentKeepalive = 25\n");
        }
        return text.ToString();
    }
}

/// <summary>Where a rendered configuration goes: the kernel's interface on a real host, memory on a simulated one.</summary>
public interface IWireGuardDevice
{
    void Apply(string interfaceName, string configuration);
}

/// <summary>
/// The simulated hosts' device: it keeps the configuration it was given, as the kernel would hold it. Only this host
/// runtime can read it back (tests compare it with what <c>wg</c> derives).
/// </summary>
public sealed class SimulatedWireGuardDevice : IWireGuardDevice
{
    public string? Configuration { get; private set; }
    public int Applied { get; private set; }

    public void Apply(string interfaceName, string configuration)
    {
        Configuration = configuration;
        Applied++;
    }
}

/// <summary>A wireguard-go device in the host's namespace (Fleet:Network = wireguard), configured with <c>wg syncconf</c>.</summary>
public sealed class NamespaceWireGuardDevice(HostNamespace network) : IWireGuardDevice
{
    public void Apply(string interfaceName, string configuration) => network.ApplyWireGuard(configuration);
}
