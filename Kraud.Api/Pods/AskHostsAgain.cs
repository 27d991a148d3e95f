using Kraud.Api.Common;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Pods;

/// <summary>
/// Asks hosts again how boots ended when the control plane has not heard. Nothing else notices a lost boot report: the
/// heartbeats list the microVM as running, so it is neither missing nor unknown, and the pod stays SCHEDULED or BOOTING for
/// good (a CI run lost a host's batch of three when Wolverine dead-lettered it: two threads of a node built the handler for
/// its message type at once, and one saw the handler before its chain was set). A replica found waiting for its report in
/// four rounds in a row (15 to 20 s) has its host asked (<see cref="ReportMicroVms"/>, one list per host), and again after 8,
/// 16, 32 rounds while it waits; the host sends the report again if the boot ended, and the decider ignores one it has
/// recorded. Asked after two rounds, a loaded bench had a sixth of its reports, late and not lost, sent twice. Runs on one
/// node (a role).
/// </summary>
public sealed class BootReportRepair(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<BootReportRepair> logger)
    : PeriodicRound(time, logger)
{
    /// <summary>The most pods one round reads: the oldest first.</summary>
    private const int Limit = 500;

    /// <summary>In how many rounds in a row a replica is found waiting before its host is asked (then 8, 16, 32 …).</summary>
    private const int FirstAsk = 4;

    /// <summary>For each microVM waiting for its boot's report: in how many rounds in a row it was found so (a handover starts afresh).</summary>
    private Dictionary<Guid, int> _waiting = [];

    protected override TimeSpan Interval => TimeSpan.FromSeconds(5);
    protected override string FailureMessage => "Asking hosts again how boots ended failed";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var pods = await session.Query<PodView>()
            .Where(p => p.State == PodState.Pending || p.State == PodState.Scheduled || p.State == PodState.Booting)
            .OrderBy(p => p.CreatedTicks).Take(Limit).ToListAsync(ct);
        var waiting = pods.SelectMany(p => p.Pod.Instances).Where(vm => vm.Phase is VmPhase.Scheduled or VmPhase.Booting).ToList();
        _waiting = waiting.ToDictionary(vm => vm.VmId, vm => _waiting.GetValueOrDefault(vm.VmId) + 1);
        var again = waiting.Where(vm => _waiting[vm.VmId] is var rounds && rounds >= FirstAsk && (rounds & (rounds - 1)) == 0).ToList();
        if (again.Count == 0) return;
        logger.LogInformation("{Count} microVMs still wait for the report of their boot: their hosts are asked again", again.Count);
        var bus = new MessageBus(runtime);
        foreach (var host in again.GroupBy(vm => (vm.HostId, vm.HostName)))
            await bus.EndpointFor(HostQueues.Uri(host.Key.HostName)).SendAsync(new ReportMicroVms(host.Key.HostId, host.Select(vm => vm.VmId).ToList()));
    }
}
