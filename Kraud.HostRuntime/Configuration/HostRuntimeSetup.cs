using JasperFx.Core;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Agents;
using Kraud.HostRuntime.Images;
using Kraud.HostRuntime.Logs;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.ErrorHandling;
using Wolverine.Postgresql;

namespace Kraud.HostRuntime.Configuration;

/// <summary>One setup for both modes: the API's in-process fleet and a standalone host runtime process.</summary>
public static class HostRuntimeSetup
{
    /// <param name="connectionString">The control plane's database, where the hosts renew their leases.</param>
    public static IServiceCollection AddHostAgents(this IServiceCollection services, FleetOptions fleet, string connectionString)
    {
        services.TryAddSingleton(fleet);
        services.TryAddSingleton(new HostLeases(connectionString));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => sp.GetService<IConfiguration>()?.GetSection(RegistryOptions.Section).Get<RegistryOptions>() ?? new RegistryOptions());
        services.TryAddSingleton(sp => new WorkloadLogShipper(connectionString, sp.GetRequiredService<ILogger<WorkloadLogShipper>>()));
        services.AddHostedService(sp => sp.GetRequiredService<WorkloadLogShipper>());
        services.AddSingleton(sp =>
        {
            var state = sp.GetService<IConfiguration>()?["Kraud:StateDirectory"] ?? ".kraud";
            var kek = new Lazy<KeyEncryptionKey>(() => KeyEncryptionKey.LoadOrCreate(fleet.KeyEncryptionKeyFile ?? Path.Combine(state, "kek")));
            return HostAgents.Create(fleet, kek, sp.GetRequiredService<TimeProvider>(), sp.GetService<ILoggerFactory>(),
                sp.GetRequiredService<RegistryOptions>(), sp.GetRequiredService<WorkloadLogShipper>());
        });
        services.AddHostedService<HostAnnouncer>();
        services.AddHostedService<CrashReporter>();
        services.AddHostedService<QuorumReporter>();
        services.AddHostedService<HeartbeatSender>();
        services.AddHostedService<Ingress.IngressAccessLogReporter>();
        return services;
    }

    /// <summary>Listens on each host's queue and sends every host report to the control plane's queues.</summary>
    public static void ServeHosts(this WolverineOptions opts, FleetOptions fleet)
    {
        opts.Discovery.IncludeAssembly(typeof(HostAgent).Assembly);
        // A powered-off host's commands wait in its queue until it is back.
        opts.OnException<HostPoweredOffException>().ScheduleRetryIndefinitely(TimeSpan.FromSeconds(1));
        // A child that outlived its SIGKILL (QEMU blocked in I/O) is tried again: the stop is reported once it is gone,
        // and after these the command waits in the dead letters with the child's state as its error.
        opts.OnException<Drivers.Qemu.ProcessSurvivedKillException>()
            .ScheduleRetry(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(120));
        foreach (var host in fleet.Hosts)
            opts.ListenToPostgresqlQueue(Host.QueueName(host.Name)).PollingInterval(fleet.QueuePollingSeconds.Seconds());
        opts.Publish(rule =>
        {
            rule.MessagesImplementing<IHostReport>();
            rule.ToPostgresqlQueue(Queues.ControlPlane);
        });
        opts.Publish(rule =>
        {
            rule.MessagesImplementing<IHostStateReport>();
            rule.ToPostgresqlQueue(Queues.HostState);
        });
    }
}
