using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Confidential;
using Kraud.HostRuntime.Configuration;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Network;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Agents;

/// <summary>The runtime of one physical host: its identity and the driver that runs its microVMs.</summary>
public sealed class HostAgent(HostDefinition definition, string datacenter, IMicroVmDriver driver, Lazy<KeyEncryptionKey> kek, ReplicaStore replicas,
    BlockExports? exports = null)
{
    public Guid Id { get; } = Host.IdFor(definition.Name);
    public string Name => definition.Name;
    public HostDefinition Definition => definition;
    public IMicroVmDriver Driver => driver;

    /// <summary>The fleet's key-encryption key: unwraps the data keys of the volumes this host's VMs mount or it stores.</summary>
    public KeyEncryptionKey Kek => kek.Value;

    /// <summary>The volume replicas this host keeps (simulated storage hosts: keys, no bytes).</summary>
    public ReplicaStore Replicas => replicas;

    /// <summary>The replicas of a real storage host (driver qemu-microvm): ciphertext files served over NBD; null elsewhere.</summary>
    public BlockExports? Exports => exports;

    /// <summary>The volumes whose replica this host holds, for its heartbeats.</summary>
    public IReadOnlyCollection<Guid> HeldReplicas => exports?.Volumes ?? replicas.Volumes;

    /// <summary>
    /// The host's WireGuard interface and key pair. No driver programs a kernel interface yet: every host keeps its
    /// rendered configuration in a simulated device.
    /// </summary>
    public WireGuardInterface WireGuard { get; } = new(new WireGuardKeys(), new SimulatedWireGuardDevice());

    /// <summary>Firewalls of this host's microVMs that DIRECT ingresses expose.</summary>
    public VmFirewalls Firewalls { get; } = new();

    public string WireGuardEndpoint => definition.WireGuardEndpoint ?? $"{definition.Name}:{WireGuardInterface.ListenPort}";

    /// <summary>
    /// A powered-off host sends no heartbeats and handles no commands (they wait in its queue), like a machine that
    /// lost power. Only the simulated fleet is switched off this way (fault injection in tests and demos).
    /// </summary>
    public bool PoweredOn { get; private set; } = true;

    public void PowerOff()
    {
        PoweredOn = false;
        if (driver is SimulatedDriver simulated) simulated.LoseAll();
        replicas.LoseAll();
    }

    public void PowerOn() => PoweredOn = true;

    public HostAnnounced Announcement(Accelerator? accelerator) => new(Id, definition.Name, definition.Zone, definition.Datacenter ?? datacenter,
        definition.Rack, definition.Role, definition.Cpu, definition.MemoryMiB, definition.NvmeGiB, definition.SevSnp, driver.Name,
        WireGuard.Keys.PublicKey, WireGuardEndpoint, accelerator?.Name, accelerator?.Reason);
}

/// <summary>The host agents this process runs: the whole simulated fleet in the API, one host in a standalone runtime.</summary>
public sealed class HostAgents : IAsyncDisposable
{
    private readonly Dictionary<Guid, HostAgent> _agents;

    public HostAgents(IEnumerable<HostAgent> agents) => _agents = agents.ToDictionary(a => a.Id);

    public IReadOnlyCollection<HostAgent> All => _agents.Values;

    public HostAgent Get(Guid hostId) => _agents.TryGetValue(hostId, out var agent)
        ? agent
        : throw new InvalidOperationException($"Host {hostId} is not run by this host runtime; its queue was read by the wrong process.");

    public HostAgent? Find(string name) => _agents.Values.FirstOrDefault(a => a.Name == name);

    /// <param name="kek">Loaded only by hosts that use it: a real storage host never holds it (it never sees a key).</param>
    public static HostAgents Create(FleetOptions fleet, Lazy<KeyEncryptionKey> kek, TimeProvider time, ILoggerFactory? loggers = null)
    {
        var authority = new Lazy<SimulatedSevSnpAuthority>(() => SimulatedSevSnpAuthority.LoadOrCreate(fleet.SevSnp.ResolvedAuthorityDirectory));
        return new(fleet.Hosts.Select(h => new HostAgent(h, fleet.Datacenter, h.Driver switch
        {
            "simulated" => new SimulatedDriver(new SimulatedDriverOptions
            {
                BootDelay = TimeSpan.FromMilliseconds(fleet.SimulatedBootDelayMs),
                SevSnp = h.SevSnp ? new SevSnpFirmware(h.Name, authority.Value) : null,
            }, time),
            QemuMicroVmDriver.DriverName => QemuMicroVmDriver.Start(fleet.Qemu, h.Name, loggers?.CreateLogger<QemuMicroVmDriver>()),
            _ => throw new InvalidOperationException(
                $"Host {h.Name}: unknown driver '{h.Driver}'. Known drivers: simulated, {QemuMicroVmDriver.DriverName}."),
        },
            kek, new ReplicaStore(kek, TimeSpan.FromMilliseconds(fleet.SimulatedResyncDelayMs), time),
            IsBlockStorage(h) ? BlockExports.ForHost(fleet.Qemu, h.Name, loggers?.CreateLogger<BlockExports>()) : null)));
    }

    /// <summary>A storage host whose driver is qemu-microvm keeps real bytes: qemu-storage-daemon exports, not simulated keys.</summary>
    public static bool IsBlockStorage(HostDefinition h) => h.Driver == QemuMicroVmDriver.DriverName && h.Role == "Storage";

    /// <summary>Drivers that run real processes stop them with the host runtime (the container disposes this singleton).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var driver in _agents.Values.Select(a => a.Driver).OfType<IAsyncDisposable>()) await driver.DisposeAsync();
        foreach (var exports in _agents.Values.Select(a => a.Exports).OfType<BlockExports>()) await exports.DisposeAsync();
        foreach (var agent in _agents.Values) agent.WireGuard.Keys.Dispose();
    }
}
