using System.CommandLine;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Commands;

/// <summary>kraud hosts list|cordon|uncordon|drain (operators)</summary>
public static class HostCommands
{
    public static Command Build()
    {
        var zone = new Option<string?>("--zone") { Description = "Only the hosts of this zone" };
        var list = new Command("list", "The fleet's hosts").With(zone);
        list.Aliases.Add("ls");
        list.Does(async c => c.Output.List(await c.RunAsync(FleetApi.Hosts, new { zone = c.Get(zone) }),
            new Column<Host>("NAME", h => h.Name), new("ZONE", h => h.Zone), new("RACK", h => h.Rack), new("ROLE", h => h.Role),
            new("STATE", h => h.State), new("CPU", h => $"{h.CpuUsed}/{h.Cpu}"), new("MEMORY", h => $"{h.MemoryUsedMiB}/{h.MemoryMiB}Mi"),
            new("VMS", h => h.MicroVms.Count.ToString(CultureInfo.InvariantCulture)), new("SEV-SNP", h => h.SevSnp ? "yes" : ""), new("ACCEL", h => h.Accelerator),
            new("HEARTBEAT", h => Output.Time(h.LastHeartbeat))));
        return new Command("hosts", "The fleet (operators)").With(list,
            Change("cordon", "Take no new work on a host", FleetApi.Cordon),
            Change("uncordon", "Let a cordoned or drained host take work again", FleetApi.Uncordon),
            Change("drain", "Move every microVM off a host, then keep it cordoned", FleetApi.Drain));
    }

    private static Command Change(string verb, string description, Operation<Host> operation)
    {
        var host = new Argument<string>("host") { Description = "The host's name or id" };
        var cmd = new Command(verb, description).With(host);
        cmd.Does(async c =>
        {
            var found = await FleetApi.FindAsync(c, c.Get(host));
            var h = await c.RunAsync(operation, new { id = found.Id });
            c.Output.Done(h, $"host {h.Name} is {h.State}");
        });
        return cmd;
    }
}
