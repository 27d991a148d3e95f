using JasperFx.Core;
using Kraud.Api.Common;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>Pods (Managed Docker): their use cases, the scheduler, and the replacement of failed replicas.</summary>
public sealed class PodsSlice : KraudSlice
{
    public const string SchedulerQueue = "scheduler";

    /// <summary>The in-memory queue that gathers a node's <see cref="PodAwaitsPlacement"/> asks.</summary>
    public const string PlacementAsks = "placement-asks";

    public override void MapFields(Fields fields)
    {
        PodQueries.Map(fields);
        CreatePodField.Map(fields);
        ScalePodField.Map(fields);
        RestartPodField.Map(fields);
        DeletePodField.Map(fields);
    }

    public override void ConfigureMarten(StoreOptions marten) => marten.AddDecider<Kraud.Domain.Pods.Pod>();

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton<IPods, PodStreams>();
        services.AddRunOnceRound<SchedulerRepair>("scheduler-repair");
        services.AddRunOnceRound<BootReportRepair>("boot-report-repair");
    }

    public override void ConfigureWolverine(WolverineOptions wolverine)
    {
        // One placement batch at a time: the scheduler reads free capacity and reserves it, and two concurrent
        // placements could otherwise both take the last free slot of a host. Batching is what makes it fast:
        // one capacity read and one transaction for up to a few hundred pods.
        wolverine.BatchMessagesOf<SchedulePod>(batch =>
        {
            batch.BatchSize = 250;
            batch.TriggerTime = 5.Milliseconds();
            batch.LocalExecutionQueueName = SchedulerQueue;
        });
        wolverine.LocalQueue(SchedulerQueue).Sequential();
        wolverine.RouteToTheScheduler<SchedulePod>(Common.SchedulerQueue.Name);
        // A pod's ask travels in memory and a node's asks of a moment share one envelope to the scheduler (each durable
        // request cost about five commits: outbox, queue table, notification, pop, inbox); SchedulerRepair covers a lost one.
        wolverine.BatchMessagesOf<PodAwaitsPlacement>(batch =>
        {
            batch.BatchSize = 500;
            batch.TriggerTime = 100.Milliseconds();
            batch.LocalExecutionQueueName = PlacementAsks;
        }).BufferedInMemory();
        wolverine.LocalQueue(PlacementAsks).Sequential().BufferedInMemory();
    }
}
