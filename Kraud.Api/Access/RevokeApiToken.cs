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
        var stream = await session.Events.FetchStreamAsync(command.TokenId);
        var state = Fold.Events<ApiToken>(stream.Select(e => e.Data));
        var events = ApiTokenDecider.Decide(command, state);
        if (events.Count == 0) return;
        session.Stamp(context, command.By, state.TenantId, "RevokeApiToken");
        session.Events.Append(command.TokenId, stream.Count + events.Count, events);
    }
}
