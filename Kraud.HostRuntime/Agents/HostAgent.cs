using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Confidential;
using Kraud.HostRuntime.Configuration;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Images;
using Kraud.HostRuntime.Logs;
using Kraud.HostRuntime.Network;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Agents;

/// <summary>The runtime of one physical host: its identity and the driver that runs its microVMs.</summary>
public sealed class HostAgent(HostDefinition definition, string datacenter, IMicroVmDriver driver, Lazy<KeyEncryptionKey> kek, ReplicaStore replicas,
    Lazy<SealingKeyPair> sealing, BlockExports? exports = null, WireGuardKeys? keys = null, HostNamespace? network = null, Ingress.IngressProxy? ingress = null)
{
    public Guid Id { get; } = Host.IdFor(definition.Name);
    public string Name => definition.Name;
    public HostDefinition Definition => definition;
    public IMicroVmDriver Driver => driver;

    /// <summary>The fleet's key-encryption key: unwraps the data keys of the volumes this host's VMs mount or it stores.</summary>
    public KeyEncryptionKey Kek => kek.Value;

    /// <summary>The fleet's sealing key pair (from the key-encryption key): what registry credentials are sealed to for this host.</summary>
    public SealingKeyPair Sealing => sealing.Value;

    /// <summary>The sealing key pair if some host of this runtime derived it (only those that pull private images do).</summary>
    internal Lazy<SealingKeyPair> SealingKeys => sealing;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, TaskCompletionSource> _bootsReported = new();

    /// <summary>The boot of this VM has been reported: its exit may be reported now (the control plane hears them in that order).</summary>
    public void BootReported(Guid vmId) => _bootsReported.GetOrAdd(vmId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Waits (a while at most) until the VM's boot was reported, and forgets it.</summary>
    public async Task WhenBootReportedAsync(Guid vmId, TimeSpan atMost)
    {
        var reported = _bootsReported.GetOrAdd(vmId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await reported.Task.WaitAsync(atMost);
        }
        catch (TimeoutException) { }
        _bootsReported.TryRemove(vmId, out _);
        ForgetBoot(vmId);
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, IMicroVmReport> _bootOutcomes = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> _reportsToLose = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> _reportsLost = new();

    /// <summary>
    /// How the VM's boot ended (booted or failed), kept while the VM is here, for the control plane may ask again
    /// (<see cref="ReportMicroVm"/>): a report can be lost on the way. False when this report is to be lost (an injected fault).
    /// </summary>
    public bool BootEnded(IMicroVmReport outcome, Guid tenantId)
    {
        _bootOutcomes[outcome.VmId] = outcome;
        while (_reportsToLose.TryGetValue(tenantId, out var left) && left > 0)
        {
            if (!_reportsToLose.TryUpdate(tenantId, left - 1, left)) continue;
            _reportsLost.AddOrUpdate(tenantId, 1, (_, n) => n + 1);
            return false;
        }
        return true;
    }

    /// <summary>How the VM's boot ended here; null while it boots, or when it is gone or was never here.</summary>
    public IMicroVmReport? BootOutcome(Guid vmId) => _bootOutcomes.GetValueOrDefault(vmId);

    public void ForgetBoot(Guid vmId) => _bootOutcomes.TryRemove(vmId, out _);

    /// <summary>
    /// The reports of how the next <paramref name="count"/> boots of <paramref name="tenantId"/>'s microVMs ended are lost on
    /// the way, as one dead-lettered at the control plane would be (the tenant keeps the fault to one spec's pods).
    /// </summary>
    public void LoseNextBootReports(Guid tenantId, int count) => _reportsToLose.AddOrUpdate(tenantId, count, (_, left) => left + count);

    /// <summary>For tests: how many reports of the tenant's boots this host lost (see <see cref="LoseNextBootReports"/>).</summary>
    public int LostBootReports(Guid tenantId) => _reportsLost.GetValueOrDefault(tenantId);

    public void ClearReportFaults() => _reportsToLose.Clear();

    /// <summary>The volume replicas this host keeps (simulated storage hosts: keys, no bytes).</summary>
    public ReplicaStore Replicas => replicas;

    /// <summary>The replicas of a real storage host (driver qemu-microvm): ciphertext files served over NBD; null elsewhere.</summary>
    public BlockExports? Exports => exports;

    /// <summary>The volumes whose replica this host holds, for its heartbeats.</summary>
    public IReadOnlyCollection<Guid> HeldReplicas => exports?.Volumes ?? replicas.Volumes;

    /// <summary>
    /// The host's WireGuard interface and key pair: a wireguard-go device in the host's namespace when its network is real
    /// (Fleet:Network = wireguard), otherwise a simulated device that keeps the rendered configuration.
    /// </summary>
    public WireGuardInterface WireGuard { get; } = new(keys ?? new WireGuardKeys(),
        network is null ? new SimulatedWireGuardDevice() : new NamespaceWireGuardDevice(network));

    /// <summary>The host's network namespace (Fleet:Network = wireguard); null when its network is simulated.</summary>
    public HostNamespace? Network => network;

    /// <summary>The reverse proxy of an INGRESS host with a real network; null otherwise.</summary>
    public Ingress.IngressProxy? Ingress => ingress;

    /// <summary>The last ingress configuration the control plane sent (every INGRESS host keeps it; a proxy serves it).</summary>
    public ApplyIngressConfig? IngressConfig { get; set; }

    /// <summary>The last service discovery table the control plane sent (kept by every host; served by a real network's resolver).</summary>
    public ApplyServiceDiscovery? ServiceDiscovery { get; set; }

    /// <summary>Firewalls of this host's microVMs that DIRECT ingresses expose.</summary>
    public VmFirewalls Firewalls { get; } = new();

    public string WireGuardEndpoint => definition.WireGuardEndpoint
        ?? $"{network?.UnderlayAddress ?? definition.Name}:{WireGuardInterface.ListenPort}";

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

    // A real storage host announces no sealing key: it runs no workload and never loads the key-encryption key it derives from.
    public HostAnnounced Announcement(Accelerator? accelerator) => new(Id, definition.Name, definition.Zone, definition.Datacenter ?? datacenter,
        definition.Rack, definition.Role, definition.Cpu, definition.MemoryMiB, definition.NvmeGiB, definition.SevSnp, driver.Name,
        WireGuard.Keys.PublicKey, WireGuardEndpoint, accelerator?.Name, accelerator?.Reason, exports is null ? sealing.Value.Public : null,
        ingress?.Endpoint, ingress is null ? null : network?.IngressTunnelAddress);
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
    /// <param name="registries">How host runtimes reach registries (mirrors, insecure registries) when they pull images.</param>
    /// <param name="logs">Where workload log lines go besides the host's files (the control plane's log table).</param>
    public static HostAgents Create(FleetOptions fleet, Lazy<KeyEncryptionKey> kek, TimeProvider time, ILoggerFactory? loggers = null,
        RegistryOptions? registries = null, IWorkloadLogSink? logs = null)
    {
        var authority = new Lazy<SimulatedSevSnpAuthority>(() => SimulatedSevSnpAuthority.LoadOrCreate(fleet.SevSnp.ResolvedAuthorityDirectory));
        // Derived from the key-encryption key, so only when a host opens a sealed registry credential.
        var sealing = new Lazy<SealingKeyPair>(() => SealingKeyPair.From(kek.Value));
        var registry = new Lazy<DistributionClient>(() => new DistributionClient(registries ?? new RegistryOptions()));
        var logger = loggers?.CreateLogger<HostAgent>() ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        WorkloadServices Workloads(HostDefinition h)
        {
            var pullLogger = loggers?.CreateLogger<ImagePuller>() ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
            var cache = new ImageCache(QemuMicroVmDriver.ImageCacheDirectory(fleet.Qemu, h.Name), fleet.Qemu.ImageCacheMiB * 1024L * 1024, pullLogger);
            return new WorkloadServices(new ImagePuller(registry.Value, cache, new RootfsBuilder(fleet.Qemu, pullLogger), pullLogger), sealing, logs);
        }
        var agents = new List<HostAgent>();
        try
        {
            foreach (var h in fleet.Hosts) agents.Add(CreateAgent(fleet, h, kek, sealing, Workloads, time, loggers, logger, authority));
        }
        catch
        {
            // A host whose namespace could not be made leaves nothing behind, nor do the ones made before it.
            foreach (var made in agents) made.Network?.Dispose();
            throw;
        }
        return new(agents);
    }

    private static HostAgent CreateAgent(FleetOptions fleet, HostDefinition h, Lazy<KeyEncryptionKey> kek, Lazy<SealingKeyPair> sealing,
        Func<HostDefinition, WorkloadServices> workloads, TimeProvider time, ILoggerFactory? loggers, ILogger logger, Lazy<SimulatedSevSnpAuthority> authority)
    {
        var keys = new WireGuardKeys();
        var network = fleet.Network switch
        {
            NetworkModes.Simulated => null,
            NetworkModes.WireGuard => HostNamespace.Start(fleet, h, keys.PrivateKey(), logger),
            _ => throw new InvalidOperationException($"Fleet:Network is '{fleet.Network}'; known: {NetworkModes.Simulated}, {NetworkModes.WireGuard}."),
        };
        Ingress.IngressProxy? proxy = null;
        try
        {
            if (network is not null && string.Equals(h.Role, "Ingress", StringComparison.OrdinalIgnoreCase))
            {
                network.UseIngressTunnel();
                proxy = Ingress.IngressProxy.StartAsync(network, loggers, fleet.IngressTrustedCaFile).GetAwaiter().GetResult();
            }
            return new HostAgent(h, fleet.Datacenter, h.Driver switch
            {
                "simulated" => new SimulatedDriver(new SimulatedDriverOptions
                {
                    BootDelay = TimeSpan.FromMilliseconds(fleet.SimulatedBootDelayMs),
                    SevSnp = h.SevSnp ? new SevSnpFirmware(h.Name, authority.Value) : null,
                }, time),
                QemuMicroVmDriver.DriverName => QemuMicroVmDriver.Start(fleet.Qemu, h.Name, loggers?.CreateLogger<QemuMicroVmDriver>(), workloads(h), network),
                _ => throw new InvalidOperationException(
                    $"Host {h.Name}: unknown driver '{h.Driver}'. Known drivers: simulated, {QemuMicroVmDriver.DriverName}."),
            },
            kek, new ReplicaStore(kek, TimeSpan.FromMilliseconds(fleet.SimulatedResyncDelayMs), time), sealing,
            IsBlockStorage(h) ? BlockExports.ForHost(fleet.Qemu, h.Name, loggers?.CreateLogger<BlockExports>(), network) : null, keys, network, proxy);
        }
        catch
        {
            proxy?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            network?.Dispose();
            keys.Dispose();
            throw;
        }
    }

    /// <summary>A storage host whose driver is qemu-microvm keeps real bytes: qemu-storage-daemon exports, not simulated keys.</summary>
    public static bool IsBlockStorage(HostDefinition h) => h.Driver == QemuMicroVmDriver.DriverName && h.Role == "Storage";

    /// <summary>Drivers that run real processes stop them with the host runtime (the container disposes this singleton).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var driver in _agents.Values.Select(a => a.Driver).OfType<IAsyncDisposable>()) await driver.DisposeAsync();
        foreach (var exports in _agents.Values.Select(a => a.Exports).OfType<BlockExports>()) await exports.DisposeAsync();
        foreach (var agent in _agents.Values)
            if (agent.Ingress is { } proxy) await proxy.DisposeAsync();
        // After the drivers and proxies: their QEMUs and sockets live in the namespaces.
        foreach (var agent in _agents.Values) agent.Network?.Dispose();
        foreach (var agent in _agents.Values) agent.WireGuard.Keys.Dispose();
        foreach (var sealing in _agents.Values.Select(a => a.SealingKeys).Distinct().Where(s => s.IsValueCreated)) sealing.Value.Dispose();
    }
}
