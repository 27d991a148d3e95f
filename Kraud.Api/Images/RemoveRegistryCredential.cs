using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Kraud.Domain.Images;
using Marten;
using Wolverine;

namespace Kraud.Api.Images;

public static class RemoveRegistryCredentialField
{
    public static void Map(Fields fields) => fields.Mutation("removeRegistryCredential", async ctx =>
    {
        await ctx.Invoke(new RemoveRegistryCredential(Ids.Parse(ctx.GetArgument<string>("id"), "Registry credential"), ctx.Caller().Principal, ctx.Now()));
        return true;
    });
}

/// <summary>The credential's events stay (who added and removed it); its sealed password is deleted, and the registry name is free again.</summary>
public static class RemoveRegistryCredentialHandler
{
    public static async Task Handle(RemoveRegistryCredential command, IDocumentSession session, IMessageContext context)
    {
        var (state, version) = await Streams.LoadAsync<RegistryCredential>(session, command.CredentialId);
        var events = RegistryCredentialDecider.Decide(command, state);
        session.Stamp(context, command.By, state.TenantId, "RemoveRegistryCredential");
        session.Events.Append(command.CredentialId, version + events.Count, events);
        session.Delete<RegistryCredentialSecret>(command.CredentialId);
        session.Delete<NameClaim>(NameClaim.For("registry-credential", state.TenantId.ToString(), state.Registry));
    }
}

public static class RegistryCredentialQueries
{
    /// <summary>A tenant's own credentials (registry and user); operators see every tenant's. Never a password.</summary>
    public static void Map(Fields fields) => fields.Query("registryCredentials", async ctx =>
    {
        var principal = ctx.ResourceReader();
        var query = ctx.Service<IQuerySession>().Query<Kraud.Projections.Images.RegistryCredentialView>().AsQueryable();
        if (principal.TenantId is { } tenant) query = query.Where(c => c.TenantId == tenant);
        return (await query.OrderBy(c => c.Registry).ToListAsync(ctx.CancellationToken)).Select(RegistryCredentialDto.From).ToList();
    });
}
