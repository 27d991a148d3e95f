using System.Threading.Channels;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>
/// A replica a running guest's quorum reported bad (<see cref="QemuMicroVmDriver.ReplicaReportedBad"/>) goes to the control
/// plane as <see cref="ReplicaReportedBad"/>, which replaces it. The driver raises it on its watcher's thread; it is sent from here.
/// </summary>
public sealed class QuorumReporter(HostAgents agents, IWolverineRuntime runtime, ILogger<QuorumReporter> logger) : BackgroundService
{
    private readonly Channel<ReplicaReportedBad> _reports = Channel.CreateUnbounded<ReplicaReportedBad>();
    private readonly List<(QemuMicroVmDriver Driver, Action<QuorumReport> Report)> _subscriptions = [];

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var agent in agents.All)
        {
            if (agent.Driver is not QemuMicroVmDriver qemu) continue;
            Action<QuorumReport> report = r => _reports.Writer.TryWrite(new ReplicaReportedBad(agent.Id, r.VolumeId, r.VmId, r.Fault));
            qemu.ReplicaReportedBad += report;
            _subscriptions.Add((qemu, report));
        }
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var bus = new MessageBus(runtime);
        await foreach (var report in _reports.Reader.ReadAllAsync(stoppingToken))
        {
            try
            {
                await bus.PublishAsync(report);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Could not report the bad replica of volume {VolumeId} on {Host}", report.VolumeId, report.Fault.ReplicaHostId);
            }
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var (driver, report) in _subscriptions) driver.ReplicaReportedBad -= report;
        return base.StopAsync(cancellationToken);
    }
}
