using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Agents;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Ingress;

/// <summary>Sends what each ingress proxy of this runtime answered to the control plane, about once a second, for the tenants' access logs.</summary>
public sealed class IngressAccessLogReporter(HostAgents agents, IWolverineRuntime runtime, ILogger<IngressAccessLogReporter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var bus = new MessageBus(runtime);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            foreach (var agent in agents.All.Where(a => a.Ingress is not null && a.PoweredOn))
            {
                var requests = agent.Ingress!.DrainLog();
                if (requests.Count == 0) continue;
                try
                {
                    await bus.PublishAsync(new IngressRequestsServed(agent.Id, requests));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning("Host {Host}: {Count} access log entries were not sent: {Error}", agent.Name, requests.Count, e.Message);
                }
            }
        }
    }
}
