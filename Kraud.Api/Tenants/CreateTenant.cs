using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Tenants;
using Kraud.Projections.Tenants;
using Marten;
using Wolverine;

namespace Kraud.Api.Tenants;

public static class CreateTenantField
{
    public static void Map(Fields fields) => fields.Mutation("createTenant", async ctx =>
    {
        var command = new CreateTenant(ctx.NewId(), ctx.Input("input").Required<string>("name"), ctx.Caller().Principal, ctx.Now());
        await ctx.Invoke(command);
        var tenant = await ctx.Service<IQuerySession>().LoadAsync<TenantView>(command.TenantId, ctx.CancellationToken);
        return TenantDto.From(tenant!);
    });
}

public static class CreateTenantHandler
{
    public static async Task Handle(CreateTenant command, IDocumentSession session, IMessageContext context, IAddresses addresses)
    {
        var events = TenantDecider.Decide(command, Tenant.Initial);
        session.Stamp(context, command.By, command.TenantId, nameof(CreateTenant));
        session.Events.StartStream(command.TenantId, events);
        session.Insert(new NameClaim { Id = NameClaim.For("tenant", command.Name), OwnerId = command.TenantId });
        // Every tenant has its VPC (its /48) from the start; namespaces get their overlays with their first pod.
        await addresses.EnsureVpcAsync(session, context, command.TenantId, command.By, command.At);
    }
}
