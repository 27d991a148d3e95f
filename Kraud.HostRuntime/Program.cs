using Kraud.HostRuntime.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Postgresql;

// A standalone host runtime for one physical host:
//   dotnet run --project Kraud.HostRuntime -- --host <name> [--zone z --rack r --role Compute --cpu 16 --memory-mib 65536 --sev-snp true]
// The host's definition comes from the Fleet:Hosts configuration entry of that name, or from the flags.
var builder = Host.CreateApplicationBuilder(args);
// Defaults for a host process started from anywhere; appsettings.json or Logging__* variables override them.
builder.Logging.AddFilter("Wolverine", LogLevel.Warning).AddFilter("JasperFx", LogLevel.Warning).AddFilter("Weasel", LogLevel.Warning);
builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
{
    ["--host"] = "Host:Name", ["--zone"] = "Host:Zone", ["--rack"] = "Host:Rack", ["--role"] = "Host:Role", ["--cpu"] = "Host:Cpu",
    ["--memory-mib"] = "Host:MemoryMiB", ["--nvme-gib"] = "Host:NvmeGiB", ["--sev-snp"] = "Host:SevSnp", ["--driver"] = "Host:Driver",
});
var fleet = builder.Configuration.GetSection(FleetOptions.Section).Get<FleetOptions>() ?? new FleetOptions();
var name = builder.Configuration["Host:Name"]
    ?? throw new InvalidOperationException("Name the host this runtime serves: --host <name>.");
var definition = fleet.Hosts.FirstOrDefault(h => h.Name == name) ?? new HostDefinition { Name = name, Cpu = 16, MemoryMiB = 65536, NvmeGiB = 1024 };
builder.Configuration.GetSection("Host").Bind(definition);
fleet.Hosts = [definition];

var connection = builder.Configuration.GetConnectionString("Kraud") ?? builder.Configuration["KRAUD_DATABASE"]
    ?? throw new InvalidOperationException("Set the control plane's database: ConnectionStrings:Kraud or KRAUD_DATABASE.");

builder.UseWolverine(opts =>
{
    opts.ServiceName = $"kraud-host-{name}";
    // Each host process keeps its own inbox/outbox tables: processes that share them would recover each other's messages.
    opts.PersistMessagesWithPostgresql(connection, "hostrt_" + name.Replace('-', '_')).EnableMessageTransport(_ => { });
    opts.TuneQueueTransport();
    opts.ServeHosts(fleet);
    opts.Durability.Mode = DurabilityMode.Solo;
});
builder.Services.AddHostAgents(fleet);

await builder.Build().RunAsync();
