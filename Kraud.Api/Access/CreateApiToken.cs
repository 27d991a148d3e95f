using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Tenants;
using Marten;
using Wolverine;

namespace Kraud.Api.Access;

public sealed record ApiTokenSecretDto(Guid Id, string Token, string Role);

public static class CreateApiTokenField
{
    public static void Map(Fields fields) => fields.Mutation("createApiToken", async ctx =>
    {
        var caller = ctx.Caller();
        var input = ctx.Input("input");
        var role = Enums.Parse<Role>(input.Required<string>("role"), "role");
        var tenant = input.Optional<string>("tenantId") is { } t ? Ids.Parse(t, "Tenant") : (Guid?)null;
        var secret = TokenSecrets.New();
        var command = new IssueApiToken(ctx.NewId(), tenant, role, input.Required<string>("name"), TokenSecrets.Sha256(secret),
            caller.Principal, ctx.Now());
        await ctx.Invoke(command);
        return new ApiTokenSecretDto(command.TokenId, secret, Enums.Name(role));
    });
}

public static class IssueApiTokenHandler
{
    public static async Task Handle(IssueApiToken command, IDocumentSession session, IMessageContext context)
    {
        var tenant = command.TenantId ?? command.By.TenantId;
        if (tenant is { } id && await session.LoadAsync<TenantView>(id) is null) throw DomainException.NotFound("Tenant", id);
        var events = ApiTokenDecider.Decide(command, ApiToken.Initial);
        session.Stamp(context, command.By, tenant, "CreateApiToken");
        session.Events.StartStream(command.TokenId, events);
    }
}
