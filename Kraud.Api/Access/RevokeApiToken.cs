using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Marten;
using Wolverine;

namespace Kraud.Api.Access;

public static class RevokeApiTokenField
{
    public static void Map(Fields fields) => fields.Mutation("revokeApiToken", async ctx =>
    {
        var id = ctx.GetArgument<string>("id");
        await ctx.Invoke(new RevokeApiToken(Ids.Parse(id, "API token"), ctx.Caller().Principal, ctx.Now()));
        return true;
    });
}

public static class RevokeApiTokenHandler
{
    public static async Task Handle(RevokeApiToken command, IDocumentSession session, IMessageContext context)
    {
        var loaded = await Streams.FetchForWritingAsync<ApiToken>(session, command.TokenId);
        var state = loaded.State;
        var events = ApiTokenDecider.Decide(command, state);
        if (events.Count == 0) return;
        Streams.Append(loaded, events, AuditStamp.For(context, command.By, state.TenantId, "RevokeApiToken"));
    }
}
