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
/// console tail). Drivers raise the crash on whatever thread noticed it; the report is sent from here, in order.
/// </summary>
public sealed class CrashReporter(HostAgents agents, IWolverineRuntime runtime, ILogger<CrashReporter> logger) : BackgroundService
{
    private readonly Channel<MicroVmFailed> _failures = Channel.CreateUnbounded<MicroVmFailed>();
    private readonly List<(IMicroVmDriver Driver, Action<MicroVmCrash> Handler)> _subscriptions = [];

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var agent in agents.All)
        {
            Action<MicroVmCrash> handler = crash => _failures.Writer.TryWrite(new MicroVmFailed(agent.Id, crash.VmId, crash.PodId, crash.Reason));
            agent.Driver.Crashed += handler;
            _subscriptions.Add((agent.Driver, handler));
        }
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var bus = new MessageBus(runtime);
        await foreach (var failure in _failures.Reader.ReadAllAsync(stoppingToken))
        {
            try
            {
                logger.LogWarning("Host {Host}: microVM {VmId} of pod {PodId} crashed", failure.HostId, failure.VmId, failure.PodId);
                await bus.PublishAsync(failure, new DeliveryOptions { GroupId = failure.PodId.ToString() });
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Could not report the crash of microVM {VmId}", failure.VmId);
            }
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var (driver, handler) in _subscriptions) driver.Crashed -= handler;
        return base.StopAsync(cancellationToken);
    }
}
