using Kraud.Api.Common;

namespace Kraud.Api.Logs;

/// <summary>Workload logs: what host runtimes ship, read by podLogs, the log stream and (through IWorkloadLogs) other slices.</summary>
public sealed class LogsSlice : KraudSlice
{
    public override void MapFields(Fields fields) => PodLogsQuery.Map(fields);

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton<WorkloadLogReader>();
        services.AddSingleton<IWorkloadLogs>(sp => sp.GetRequiredService<WorkloadLogReader>());
        services.AddRunOnceRound<WorkloadLogRetention>("log-retention");
    }
}
