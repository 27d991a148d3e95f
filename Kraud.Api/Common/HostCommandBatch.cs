using System.Diagnostics;
using Kraud.Domain.HostProtocol;
using Wolverine;

namespace Kraud.Api.Common;

/// <summary>
/// Boot commands a batch of decisions made, held until the batch ends and then sent as one list per host
/// (<see cref="BootMicroVms"/>): the scheduler places hundreds of pods in one transaction, and one command per microVM cost a
/// queue row, a delivery and a transaction at the host for each. They leave through the same outbox, so they are sent only
/// if the batch commits.
/// </summary>
public sealed class HostCommandBatch
{
    private readonly List<(string HostName, BootMicroVm Boot, string? CorrelationId, string? TraceParent)> _boots = [];

    /// <param name="traceParent">The trace of the pod's decision, which the host's boot continues.</param>
    public void Boot(string hostName, BootMicroVm boot, string? correlationId, string? traceParent) =>
        _boots.Add((hostName, boot, correlationId, traceParent));

    public async Task SendAsync(IMessageContext context)
    {
        foreach (var host in _boots.GroupBy(b => b.HostName))
        {
            var boots = host.ToList();
            var queue = context.EndpointFor(HostQueues.Uri(host.Key));
            if (boots.Count == 1)
            {
                // Alone on its host: sent as it would be without a batch, with its pod's correlation id and in its pod's trace.
                var (_, boot, correlationId, traceParent) = boots[0];
                using var activity = traceParent is null ? null : Telemetry.KraudMetrics.Tracing.StartActivity("kraud.host.command", ActivityKind.Producer, traceParent);
                context.CorrelationId = correlationId;
                await queue.SendAsync(boot);
                continue;
            }
            await queue.SendAsync(new BootMicroVms(boots[0].Boot.HostId, [.. boots.Select(b => new Batched<BootMicroVm>(b.Boot, b.CorrelationId, b.TraceParent))]));
        }
        _boots.Clear();
    }
}
