using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>Each powered-on host tells the control plane every few seconds that it lives and which microVMs it runs.</summary>
public sealed class HeartbeatSender(HostAgents agents, FleetOptions fleet, IWolverineRuntime runtime, TimeProvider time, ILogger<HeartbeatSender> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(fleet.HeartbeatIntervalMs), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            foreach (var agent in agents.All.Where(a => a.PoweredOn))
            {
                try
                {
                    // Grouped by host: one host's heartbeats are handled in the order they were sent.
                    // A bus per heartbeat: each gets a correlation id of its own, so what reconciliation decides
                    // from one heartbeat is not linked to everything decided from all the others.
                    await new MessageBus(runtime).PublishAsync(new HostHeartbeat(agent.Id, agent.Driver.Running.ToList(), time.GetUtcNow(),
                        agent.Replicas.Volumes.ToList()),
                        new DeliveryOptions { GroupId = agent.Id.ToString() });
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "Host {Host} could not send its heartbeat", agent.Name);
                }
            }
        }
    }
}
