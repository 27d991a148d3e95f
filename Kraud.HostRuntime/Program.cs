using System.CommandLine;
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
//     [--nvme-gib 1024] [--kek-file <the fleet's key-encryption key, shared by every host runtime>] [--config <fleet.json>]
//     [--network wireguard --underlay kr-underlay --underlay-cidr 100.64.0.0/16 --underlay-address 100.64.0.10] [--Section:Key value …]
// The host's definition comes from the Fleet:Hosts configuration entry of that name, or from the flags (`--help` lists them);
// without --host, the runtime serves every host of its Fleet:Hosts (a lab rack in one process, as the API's in-process fleet).
//   dotnet run --project Kraud.HostRuntime -- guest-image [--guest-dir .kraud/guest] [--kernel-package linux-image-<abi>-cloud-amd64]
// builds (or finds in its cache) the guest image the qemu-microvm driver boots, and prints where it is.
// The generic host handles SIGTERM and Ctrl+C itself (a graceful stop of its microVMs and queues), so the parser does not.
return await HostCommandLine.Build(RunHostAsync, GuestImageAsync).Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });

static async Task<int> RunHostAsync(string[] configurationArgs, CancellationToken ct)
{
    var builder = Host.CreateApplicationBuilder(configurationArgs);
    // Defaults for a host process started from anywhere; appsettings.json or Logging__* variables override them.
    builder.Logging.AddFilter("Wolverine", LogLevel.Warning).AddFilter("JasperFx", LogLevel.Warning).AddFilter("Weasel", LogLevel.Warning);
    // --config <file.json>: added after the defaults, then the command line again so that flags still win over the file.
    if (builder.Configuration["Kraud:ConfigFile"] is { Length: > 0 } configFile)
        builder.Configuration.AddJsonFile(Path.GetFullPath(configFile)).AddCommandLine(configurationArgs);
    var fleet = builder.Configuration.GetSection(FleetOptions.Section).Get<FleetOptions>() ?? new FleetOptions();
    // One state directory for the whole runtime unless Fleet:Qemu:StateDirectory names another one for the guests.
    if (builder.Configuration[$"{FleetOptions.Section}:Qemu:StateDirectory"] is null && builder.Configuration["Kraud:StateDirectory"] is { } state)
        fleet.Qemu.StateDirectory = state;
    fleet.SevSnp.AuthorityDirectory ??= Path.Combine(builder.Configuration["Kraud:StateDirectory"] ?? ".kraud", SevSnpOptions.DefaultDirectoryName);
    string name;
    if (builder.Configuration["Host:Name"] is { Length: > 0 } given)
    {
        name = given;
        var definition = fleet.Hosts.FirstOrDefault(h => h.Name == name) ?? new HostDefinition { Name = name, Cpu = 16, MemoryMiB = 65536, NvmeGiB = 1024 };
        builder.Configuration.GetSection("Host").Bind(definition);
        fleet.Hosts = [definition];
    }
    else if (fleet.Hosts.Count > 0) name = fleet.Hosts[0].Name;
    else
    {
        await Console.Error.WriteLineAsync("Name the host this runtime serves: --host <name> (see --help), or list hosts in Fleet:Hosts.");
        return 2;
    }

    if ((builder.Configuration.GetConnectionString("Kraud") ?? builder.Configuration["KRAUD_DATABASE"]) is not { Length: > 0 } connection)
    {
        await Console.Error.WriteLineAsync("Set the control plane's database: ConnectionStrings:Kraud or KRAUD_DATABASE.");
        return 2;
    }

    builder.UseWolverine(opts =>
    {
        opts.ServiceName = $"kraud-host-{name}";
        // Each host process keeps its own inbox/outbox tables: processes that share them would recover each other's messages.
        opts.PersistMessagesWithPostgresql(connection, "hostrt_" + name.Replace('-', '_')).EnableMessageTransport(_ => { });
        opts.TuneQueueTransport();
        opts.BuildHandlersBeforeListening();
        opts.ServeHosts(fleet);
        // Balanced even though the schema is the process's own: a runtime restarted under the same host name finds its
        // predecessor's node dead and recovers its in-flight messages, as the control plane's nodes do for each other.
        opts.Durability.Mode = DurabilityMode.Balanced;
    });
    builder.Services.AddHostAgents(fleet, connection);
    builder.AddHostRuntimeTelemetry($"kraud-host-{name}");

    await builder.Build().RunAsync(ct);
    return 0;
}

static async Task<int> GuestImageAsync(string? guestDirectory, string? kernelPackage, string? stateDirectory, CancellationToken ct)
{
    var options = new QemuOptions { GuestDirectory = guestDirectory, KernelPackage = kernelPackage };
    if (stateDirectory is { } state) options.StateDirectory = state;
    try
    {
        var image = await new GuestImageBuilder(options.ResolvedGuestDirectory, options.KernelPackage, options.Busybox).EnsureAsync(ct);
        Console.WriteLine($"kernel package {image.KernelPackage}\nkernel {image.Kernel}\ninitrd {image.Initrd}");
        if (image.PvhKernel is { } vmlinux) Console.WriteLine($"pvh kernel {vmlinux}");
        return 0;
    }
    catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException)
    {
        Console.Error.WriteLine($"guest image: {e.Message}");
        return 1;
    }
}

/// <summary>Internal: the test assembly boots the API's Program, and ASP.NET Core would otherwise make this one public too.</summary>
internal sealed partial class Program;
