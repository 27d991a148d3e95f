using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.Ingresses;
using Kraud.Projections.Fleet;
using Kraud.Projections.Ingresses;
using Marten;
using Wolverine;

namespace Kraud.Api.Ingresses;

/// <summary>
/// Moves managed ingress replicas off INGRESS hosts that stopped serving (FAILED, drained) and restores lost ones when
/// a host of their zone has room again. One repair at a time (a sequential queue), each deciding on fresh state; the
/// slot claims keep it from overfilling a host that a concurrent createIngress fills at the same moment.
/// </summary>
public static class RepairIngressesHandler
{
    public const string Queue = "ingress-repair";
    private static readonly Principal Repair = Principal.System("ingress-repair");

    public static async Task Handle(RepairIngresses command, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var hosts = (await session.Query<HostView>().ToListAsync()).Select(v => v.Host).ToList();
        // An INGRESS host runs no microVMs, so its drain completes at once: drained counts as leaving until it is uncordoned.
        var leaving = hosts.Where(h => h.Role == HostRole.Ingress && (h.State is HostState.Failed or HostState.Draining || h.Drained))
            .ToDictionary(h => h.Id, h => h.State == HostState.Failed ? $"ingress host {h.Name} failed" : $"ingress host {h.Name} was drained");
        var ingresses = (await session.Query<IngressView>().Where(i => !i.Deleted && i.Ingress.Kind != IngressKind.Direct).ToListAsync())
            .Where(v => v.Ingress.Degraded || v.Ingress.Replicas.Any(r => leaving.ContainsKey(r.HostId)))
            .OrderBy(v => v.Ingress.CreatedAt).ThenBy(v => v.Id).ToList();
        if (ingresses.Count == 0) return;

        var slots = await IngressSlots.LoadAsync(session, hosts);
        foreach (var view in ingresses)
        {
            var events = IngressDecider.Decide(new RepairIngress(view.Id, leaving, time.GetUtcNow()), view.Ingress, slots.Free());
            if (events.Count == 0) continue;
            session.Events.Append(view.Id, view.Version + events.Count, events)
                .Stamp(AuditStamp.For(context, Repair, view.TenantId, nameof(RepairIngress)));
            slots.Apply(session, events);
        }
    }
}
