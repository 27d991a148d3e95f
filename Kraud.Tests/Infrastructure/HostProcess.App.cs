using Kraud.Projections.Fleet;
using Marten;

namespace Kraud.Tests.Infrastructure;

/// <summary>Host runtime processes of a test application (<see cref="KraudApp"/>): its database, state and registry.</summary>
public sealed partial class HostProcess
{
    public static HostProcess Start(KraudApp app, string name, string zone, bool sevSnp = false, int cpu = 8, int memoryMiB = 16384,
        string driver = "simulated", IReadOnlyDictionary<string, string>? environment = null, string role = "Compute", int nvmeGiB = 1024,
        bool rack = false)
    {
        // The application's fast heartbeats, unless the spec says otherwise.
        var all = new Dictionary<string, string> { ["Fleet__HeartbeatIntervalMs"] = KraudApp.HeartbeatIntervalMs.ToString(CultureInfo.InvariantCulture) };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) all[key] = value;
        return Start(app.ConnectionString, app.StateDirectory, app.RegistryEnvironment, name, zone, sevSnp, cpu, memoryMiB, driver, all, role, nvmeGiB, rack);
    }

    /// <summary>One runtime process for several hosts (Fleet:Hosts, no --host): a lab rack costs one cold .NET process, not one per host.</summary>
    public static HostProcess StartRack(KraudApp app, IReadOnlyList<(string Name, string Zone, string Role, string Driver)> hosts,
        IReadOnlyDictionary<string, string> environment)
    {
        var all = new Dictionary<string, string>(environment);
        foreach (var (h, i) in hosts.Select((h, i) => (h, i)))
        {
            all[$"Fleet__Hosts__{i}__Name"] = h.Name;
            all[$"Fleet__Hosts__{i}__Zone"] = h.Zone;
            all[$"Fleet__Hosts__{i}__Rack"] = "r1";
            all[$"Fleet__Hosts__{i}__Role"] = h.Role;
            all[$"Fleet__Hosts__{i}__Driver"] = h.Driver;
            all[$"Fleet__Hosts__{i}__Cpu"] = "8";
            all[$"Fleet__Hosts__{i}__MemoryMiB"] = "16384";
            all[$"Fleet__Hosts__{i}__NvmeGiB"] = "100";
        }
        return Start(app, hosts[0].Name, hosts[0].Zone, environment: all, rack: true);
    }

    public static string KekFile(KraudApp app) => KekFile(app.StateDirectory);

    public async Task WaitUntilRegisteredAsync(KraudApp app, string? hostName = null)
    {
        var id = hostName is null ? Id : Kraud.Domain.Fleet.Host.IdFor(hostName);
        try
        {
            await Eventually.Until(async () =>
            {
                await using var session = app.Store.QuerySession();
                return await session.LoadAsync<HostView>(id) is not null;
            }, TimeSpan.FromSeconds(60), $"host {hostName ?? Name} registered itself");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} Exited: {_process.HasExited}; its output:\n{OutputTail()}", e);
        }
    }
}
