using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>
/// IPAM's part in every pod decision: a new microVM gets its addresses (an event on the pod's stream, in the same
/// commit), a microVM that stopped, failed or was lost gives them back.
/// </summary>
public static class PodAddresses
{
    public static async Task<IReadOnlyList<object>> DecideAsync(IDocumentSession session, IMessageContext context, Pod before, Pod after, Principal by,
        DateTimeOffset at)
    {
        var book = AddressBook.For(session);
        var changed = false;
        foreach (var vm in PodReactions.ReleasedVms(before, after).Where(vm => vm.Ip4 is not null))
        {
            book.Release(vm.Ip4!);
            changed = true;
        }
        var leased = new List<object>();
        foreach (var boot in PodReactions.HostCommands(before, after).OfType<PodReactions.Boot>().Where(b => b.IsNew && b.Instance.Ip4 is null))
        {
            var (ip6, ip4) = await book.LeaseAsync(context, after.TenantId, after.Spec.Namespace, boot.Instance.VmId, by, at);
            leased.Add(new PodReplicaAddressed(after.Id, boot.Instance.VmId, ip6, ip4, at));
        }
        if (changed || leased.Count > 0) await context.PublishAsync(new MeshChanged($"pod {after.Spec.Namespace}/{after.Spec.Name}"));
        return leased;
    }
}
