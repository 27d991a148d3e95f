using System.Threading.Channels;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>
/// A VM that dies on its own (its QEMU exits unasked) is reported as MicroVmFailed, with the driver's reason (the
/// console tail); one whose workload exited, as MicroVmExited with the exit code, after its boot was reported. Drivers
/// raise both on whatever thread noticed it; the reports are sent from here, in order.
/// </summary>
public sealed class CrashReporter(HostAgents agents, IWolverineRuntime runtime, ILogger<CrashReporter> logger) : BackgroundService
{
    private readonly Channel<(HostAgent Agent, IMicroVmReport Report)> _reports = Channel.CreateUnbounded<(HostAgent, IMicroVmReport)>();
    private readonly List<(IMicroVmDriver Driver, Action<MicroVmCrash> Crash, Action<MicroVmExit> Exit)> _subscriptions = [];

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var agent in agents.All)
        {
            Action<MicroVmCrash> crash = c => _reports.Writer.TryWrite((agent, new MicroVmFailed(agent.Id, c.VmId, c.PodId, c.Reason)));
            Action<MicroVmExit> exit = x => _reports.Writer.TryWrite((agent, new MicroVmExited(agent.Id, x.VmId, x.PodId, x.ExitCode, x.ExitedAt, x.EphemeralErased)));
            agent.Driver.Crashed += crash;
            agent.Driver.Exited += exit;
            _subscriptions.Add((agent.Driver, crash, exit));
        }
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var bus = new MessageBus(runtime);
        await foreach (var (agent, report) in _reports.Reader.ReadAllAsync(stoppingToken))
        {
            try
            {
                if (report is MicroVmExited exited)
                {
                    // A workload that exits at once may do so before the handler reported its boot: the control plane hears the boot first.
                    await agent.WhenBootReportedAsync(exited.VmId, TimeSpan.FromSeconds(30));
                    logger.LogInformation("Host {Host}: the workload of microVM {VmId} of pod {PodId} exited with code {Code}", agent.Name, exited.VmId,
                        exited.PodId, exited.ExitCode);
                }
                else
                {
                    logger.LogWarning("Host {Host}: microVM {VmId} of pod {PodId} crashed", agent.Name, report.VmId, report.PodId);
                }
                await bus.PublishAsync(report, new DeliveryOptions { GroupId = report.PodId.ToString() });
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Could not report the end of microVM {VmId}", report.VmId);
            }
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var (driver, crash, exit) in _subscriptions)
        {
            driver.Crashed -= crash;
            driver.Exited -= exit;
        }
        return base.StopAsync(cancellationToken);
    }
}
