using Kraud.Api.Common;
using Kraud.Domain.Ingresses;
using Marten;
using Wolverine;

namespace Kraud.Api.Ingresses;

/// <summary>Ingresses as apps drive theirs, and the firewall a booting microVM gets (see <see cref="IIngresses"/>, <see cref="IBootFirewall"/>).</summary>
public sealed class IngressesContract(NetworkOptions network) : IIngresses, IBootFirewall
{
    public Task CreateAsync(IDocumentSession session, IMessageContext context, CreateIngress command) =>
        IngressCommandHandler.Handle(command, session, context, network);

    public Task SetRoutesAsync(IDocumentSession session, IMessageContext context, SetIngressRoutes command) =>
        IngressCommandHandler.Handle(command, session, context);

    public Task DeleteAsync(IDocumentSession session, IMessageContext context, DeleteIngress command) =>
        IngressCommandHandler.Handle(command, session, context);

    public Task SendForBootAsync(IDocumentSession session, IMessageContext context, Guid podId, Guid hostId, string hostName, Guid vmId) =>
        DirectFirewall.SendForBootAsync(session, context, podId, hostId, hostName, vmId);
}
