using System.Security.Cryptography;
using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Ingresses;
using Marten;
using Wolverine;

namespace Kraud.Api.Ingresses;

/// <summary>A BASIC user's password hash (PBKDF2), one document per ingress and user: kept out of the event log, which is exported.</summary>
public sealed class IngressUserCredential
{
    public string Id { get; set; } = "";
    public Guid IngressId { get; set; }
    public string Username { get; set; } = "";
    public string PasswordHash { get; set; } = "";

    public static string For(Guid ingressId, string username) => $"{ingressId}/{username}";
}

public sealed record SetIngressUserRequest(Guid IngressId, string Username, string Password, Principal By, DateTimeOffset At);

/// <summary>setIngressUser: adds a user to a BASIC ingress or replaces its password; the ingress hosts are sent the new hash.</summary>
public static class SetIngressUserField
{
    public static void Map(Fields fields)
    {
        fields.Mutation("setIngressUser", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("ingressId"), "Ingress");
            await ctx.Invoke(new SetIngressUserRequest(id, ctx.GetArgument<string>("username"), ctx.GetArgument<string>("password"), ctx.Caller().Principal,
                ctx.Now()));
            return await IngressFields.LoadAsync(ctx, id);
        });
    }
}

public static class SetIngressUserHandler
{
    public static async Task Handle(SetIngressUserRequest r, IDocumentSession session, IMessageContext context)
    {
        r.By.RequireWriter();
        var loaded = await IngressCommandHandler.FetchForWritingAsync(session, r.IngressId, r.By);
        var ingress = loaded.State;
        var events = IngressDecider.Decide(new SetIngressUser(ingress.Id, r.Username, r.Password.Length, r.By, r.At), ingress);
        Streams.Append(loaded, events, AuditStamp.For(context, r.By, ingress.TenantId, nameof(SetIngressUser)));
        session.Store(new IngressUserCredential
        {
            Id = IngressUserCredential.For(ingress.Id, r.Username), IngressId = ingress.Id, Username = r.Username,
            PasswordHash = PasswordHash.Of(r.Password, RandomNumberGenerator.GetBytes(16)),
        });
        await context.PublishAsync(new MeshChanged($"ingress {ingress.Name} users"));
    }
}

public static class IngressUsers
{
    public static async Task<Dictionary<Guid, List<Domain.HostProtocol.IngressBasicUser>>> ForAsync(IQuerySession session, Guid[] ingressIds) =>
        ingressIds.Length == 0
            ? []
            : (await session.Query<IngressUserCredential>().Where(u => ingressIds.Contains(u.IngressId)).ToListAsync())
            .GroupBy(u => u.IngressId)
            .ToDictionary(g => g.Key, g => g.OrderBy(u => u.Username, StringComparer.Ordinal)
                .Select(u => new Domain.HostProtocol.IngressBasicUser(u.Username, u.PasswordHash)).ToList());
}
