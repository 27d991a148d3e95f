using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>Each powered-on host renews its lease every few seconds and tells the control plane which microVMs it runs.</summary>
public sealed class HeartbeatSender(HostAgents agents, HostLeases leases, FleetOptions fleet, IWolverineRuntime runtime, TimeProvider time,
    ILogger<HeartbeatSender> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(fleet.HeartbeatIntervalMs), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                // The lease says the host lives; the message below says what it runs.
                await leases.RenewAsync(agents.All.Where(a => a.PoweredOn).Select(a => a.Id).ToList(), stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Could not renew the host leases");
            }
            foreach (var agent in agents.All.Where(a => a.PoweredOn))
            {
                try
                {
                    // Grouped by host: one host's heartbeats are handled in the order they were sent.
                    // A bus per heartbeat: each gets a correlation id of its own, so what reconciliation decides
                    // from one heartbeat is not linked to everything decided from all the others.
                    await new MessageBus(runtime).PublishAsync(new HostHeartbeat(agent.Id, agent.Driver.Running.ToList(), time.GetUtcNow(),
                        agent.HeldReplicas.ToList()),
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
