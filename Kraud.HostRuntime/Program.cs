using Kraud.HostRuntime.Configuration;
using Kraud.HostRuntime.Drivers.Qemu;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Postgresql;

// A standalone host runtime for one physical host:
//   dotnet run --project Kraud.HostRuntime -- --host <name> [--zone z --rack r --role Compute --cpu 16 --memory-mib 65536 --sev-snp true]
//     [--nvme-gib 1024] [--kek-file <the fleet's key-encryption key, shared by every host runtime>]
// The host's definition comes from the Fleet:Hosts configuration entry of that name, or from the flags.
//   dotnet run --project Kraud.HostRuntime -- guest-image [--guest-dir .kraud/guest] [--kernel-package linux-image-<abi>-cloud-amd64]
// builds (or finds in its cache) the guest image the qemu-microvm driver boots, and prints where it is.
if (args.FirstOrDefault() == "guest-image") return await GuestImageCommand(args[1..]);

var builder = Host.CreateApplicationBuilder(args);
// Defaults for a host process started from anywhere; appsettings.json or Logging__* variables override them.
builder.Logging.AddFilter("Wolverine", LogLevel.Warning).AddFilter("JasperFx", LogLevel.Warning).AddFilter("Weasel", LogLevel.Warning);
builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
{
    ["--host"] = "Host:Name", ["--zone"] = "Host:Zone", ["--rack"] = "Host:Rack", ["--role"] = "Host:Role", ["--cpu"] = "Host:Cpu",
    ["--memory-mib"] = "Host:MemoryMiB", ["--nvme-gib"] = "Host:NvmeGiB", ["--sev-snp"] = "Host:SevSnp", ["--driver"] = "Host:Driver",
    ["--state-dir"] = "Kraud:StateDirectory", ["--kek-file"] = "Fleet:KeyEncryptionKeyFile",
});
var fleet = builder.Configuration.GetSection(FleetOptions.Section).Get<FleetOptions>() ?? new FleetOptions();
// One state directory for the whole runtime unless Fleet:Qemu:StateDirectory names another one for the guests.
if (builder.Configuration[$"{FleetOptions.Section}:Qemu:StateDirectory"] is null && builder.Configuration["Kraud:StateDirectory"] is { } state)
    fleet.Qemu.StateDirectory = state;
fleet.SevSnp.AuthorityDirectory ??= Path.Combine(builder.Configuration["Kraud:StateDirectory"] ?? ".kraud", SevSnpOptions.DefaultDirectoryName);
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
builder.Services.AddHostAgents(fleet, connection);
builder.AddHostRuntimeTelemetry($"kraud-host-{name}");

await builder.Build().RunAsync();
return 0;

static async Task<int> GuestImageCommand(string[] args)
{
    string? Flag(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
    var options = new QemuOptions { GuestDirectory = Flag("--guest-dir"), KernelPackage = Flag("--kernel-package") };
    if (Flag("--state-dir") is { } state) options.StateDirectory = state;
    try
    {
        var image = await new GuestImageBuilder(options.ResolvedGuestDirectory, options.KernelPackage, options.Busybox).EnsureAsync(CancellationToken.None);
        Console.WriteLine($"kernel package {image.KernelPackage}\nkernel {image.Kernel}\ninitrd {image.Initrd}");
        return 0;
    }
    catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException)
    {
        Console.Error.WriteLine($"guest image: {e.Message}");
        return 1;
    }
}
