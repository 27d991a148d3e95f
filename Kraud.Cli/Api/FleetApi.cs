using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Api;

public sealed record HostMicroVm(string Id, string PodId, string State);

public sealed record Host(string Id, string Name, string Zone, string Rack, string Role, string State, bool SevSnp, int Cpu, int MemoryMiB,
    int CpuUsed, int MemoryUsedMiB, DateTime? LastHeartbeat, string? Accelerator, IReadOnlyList<HostMicroVm> MicroVms);

public static class FleetApi
{
    private const string Fields = """
        id name zone rack role state sevSnp cpu memoryMiB cpuUsed memoryUsedMiB lastHeartbeat accelerator microVms { id podId state }
        """;

    public static readonly Operation<IReadOnlyList<Host>> Hosts = new("hosts", $$"""query Hosts($zone: String) { hosts(zone: $zone) { {{Fields}} } }""");

    public static readonly Operation<Host> Cordon = new("cordonHost", $$"""mutation CordonHost($id: ID!) { cordonHost(id: $id) { {{Fields}} } }""");

    public static readonly Operation<Host> Uncordon = new("uncordonHost", $$"""mutation UncordonHost($id: ID!) { uncordonHost(id: $id) { {{Fields}} } }""");

    public static readonly Operation<Host> Drain = new("drainHost", $$"""mutation DrainHost($id: ID!) { drainHost(id: $id) { {{Fields}} } }""");

    public static async Task<Host> FindAsync(CommandContext c, string idOrName) =>
        (await c.RunAsync(Hosts, new { zone = (string?)null })).SingleOrDefault(h => h.Id == idOrName || h.Name == idOrName)
        ?? throw new KraudApiException("NOT_FOUND", $"No host {idOrName}.");
}
