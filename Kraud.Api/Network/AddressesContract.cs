using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>IPAM as other slices ask for it (see <see cref="IAddresses"/>), through the session's <see cref="AddressBook"/>.</summary>
public sealed class AddressesContract : IAddresses
{
    public Task EnsureVpcAsync(IDocumentSession session, IMessageContext context, Guid tenantId, Principal by, DateTimeOffset at) =>
        AddressBook.For(session).EnsureVpcAsync(context, tenantId, by, at);

    public Task EnsureNamespaceAsync(IDocumentSession session, IMessageContext context, Guid tenantId, string ns, Principal by, DateTimeOffset at) =>
        AddressBook.For(session).EnsureNamespaceAsync(context, tenantId, ns, by, at);

    public void ReadAheadForCreate(ReadAhead ahead, Guid tenantId) => AddressBook.ReadAheadForCreate(ahead, tenantId);

    public Task<int> FreeAddressesAsync(IDocumentSession session, IMessageContext context, Guid tenantId, string ns, Principal by, DateTimeOffset at) =>
        AddressBook.For(session).FreeAddressesAsync(context, tenantId, ns, by, at);

    public Task<IReadOnlyList<object>> DecideAsync(IDocumentSession session, IMessageContext context, Pod before, Pod after, Principal by,
        DateTimeOffset at) =>
        PodAddresses.DecideAsync(session, context, before, after, by, at);
}
