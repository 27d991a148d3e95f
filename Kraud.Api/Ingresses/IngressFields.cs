using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Ingresses;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Ingresses;

/// <summary>ingresses, createIngress, addDomain, verifyDomain, deleteIngress.</summary>
public static class IngressFields
{
    public static void Map(Fields fields)
    {
        fields.Query("ingresses", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (principal.Role == Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens read audit data only.");
            var query = ctx.Service<IQuerySession>().Query<IngressView>().Where(i => !i.Deleted);
            if (principal.TenantId is { } tenant) query = query.Where(i => i.TenantId == tenant);
            else if (principal.Role != Role.Operator) return [];
            return (await query.OrderBy(i => i.Name).ToListAsync(ctx.CancellationToken)).Select(v => IngressDto.From(v.Ingress)).ToList();
        });
        fields.Mutation("createIngress", async ctx =>
        {
            var caller = ctx.Caller().Principal;
            var input = ctx.Input("input");
            var auth = input.Has("auth") ? new InputArgs((IDictionary<string, object?>)ctx.GetArgument<Dictionary<string, object?>>("input")["auth"]!) : null;
            var command = new CreateIngress(ctx.NewId(), caller.RequireTenant(), input.Required<string>("name"),
                Enums.Parse<IngressKind>(input.Required<string>("kind"), "kind"),
                input.Objects("routes").Select(r => new IngressRoute(r.Required<string>("host").ToLowerInvariant(), r.Optional<string>("path") ?? "/",
                    Ids.Parse(r.Required<string>("podId"), "Pod"), r.Int("port") ?? 0)).ToList(),
                auth is null ? null : new AuthPolicy(auth.Required<string>("method"), auth.Optional<string>("issuer"), auth.Optional<string>("audience"),
                    auth.Strings("allowedGroups")),
                input.Int("port"), input.Optional<string>("protocol"),
                input.Objects("firewall").Select(f => new FirewallRule(f.Required<string>("action"), f.Required<string>("protocol"), f.Int("port") ?? 0,
                    f.Required<string>("source"))).ToList(),
                input.Bool("acceptExposure") ?? false, input.Int("failuresTolerated") ?? 1, caller, ctx.Now());
            await ctx.Invoke(command);
            return await LoadAsync(ctx, command.IngressId);
        });
        fields.Mutation("addDomain", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("ingressId"), "Ingress");
            var name = ctx.GetArgument<string>("name");
            await ctx.Invoke(new AddDomainRequest(id, name, ctx.Caller().Principal, ctx.Now()));
            return DomainOf(await LoadAsync(ctx, id), name);
        });
        fields.Mutation("verifyDomain", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("ingressId"), "Ingress");
            var name = ctx.GetArgument<string>("name");
            await ctx.Invoke(new VerifyDomainRequest(id, name, ctx.Caller().Principal, ctx.Now()));
            return DomainOf(await LoadAsync(ctx, id), name);
        });
        fields.Mutation("deleteIngress", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("id"), "Ingress");
            await ctx.Invoke(new DeleteIngress(id, ctx.Caller().Principal, ctx.Now()));
            return await LoadAsync(ctx, id);
        });
        fields.Query("ingressHostConfig", async ctx =>
        {
            if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Ingress host configurations are visible to operators only.");
            var hostId = Ids.Parse(ctx.GetArgument<string>("hostId"), "Host");
            return await IngressHostConfig.RenderAsync(ctx.Service<IQuerySession>(), hostId, ctx.CancellationToken);
        });
    }

    private static DomainDto DomainOf(IngressDto ingress, string name) =>
        ingress.Domains.Single(d => d.Name == name.Trim().TrimEnd('.').ToLowerInvariant());

    internal static async Task<IngressDto> LoadAsync(IResolveFieldContext ctx, Guid id)
    {
        var view = await ctx.Service<IQuerySession>().LoadAsync<IngressView>(id, ctx.CancellationToken);
        var principal = ctx.Caller().Principal;
        if (view is null || (principal.TenantId is { } tenant && view.TenantId != tenant)) throw DomainException.NotFound("Ingress", id);
        return IngressDto.From(view.Ingress);
    }
}

public sealed record RenderedRouteDto(string Host, string Path, Guid PodId, int Port, IReadOnlyList<string> Backends);

public sealed record IngressHostEntryDto(Guid IngressId, Guid TenantId, string Name, string Kind, IReadOnlyList<string> TlsHostnames, AuthPolicyDto? Auth,
    IReadOnlyList<RenderedRouteDto> Routes);

public sealed record IngressHostConfigDto(Guid HostId, string HostName, IReadOnlyList<IngressHostEntryDto> Ingresses);

/// <summary>
/// What an ingress host loads: for each ingress with a replica on it, the routes that serve (platform names, verified
/// domains), each with the VPC addresses of the pod's running microVMs as backends, the TLS host names and the auth
/// policy. Rendered from the read models on every call, so it follows pods as they move, restart or scale.
/// </summary>
public static class IngressHostConfig
{
    public static async Task<IngressHostConfigDto> RenderAsync(IQuerySession session, Guid hostId, CancellationToken ct)
    {
        var host = await session.LoadAsync<HostView>(hostId, ct) ?? throw DomainException.NotFound("Host", hostId);
        var ingresses = (await session.Query<IngressView>().Where(i => !i.Deleted && i.Ingress.Kind != IngressKind.Direct).ToListAsync(ct))
            .Select(v => v.Ingress).Where(i => i.Replicas.Any(r => r.HostId == hostId)).OrderBy(i => i.Name).ThenBy(i => i.Id).ToList();
        var podIds = ingresses.SelectMany(i => i.Routes.Select(r => r.PodId)).Distinct().ToArray();
        var pods = podIds.Length == 0 ? [] : (await session.LoadManyAsync<PodView>(ct, podIds)).ToDictionary(p => p.Id, p => p.Pod);
        return new IngressHostConfigDto(host.Id, host.Name, ingresses.Select(i => new IngressHostEntryDto(i.Id, i.TenantId, i.Name, Enums.Name(i.Kind),
            i.Routes.Select(r => r.Host).Where(i.Serves).Distinct().Order(StringComparer.Ordinal).ToList(), IngressDto.PolicyOf(i.Auth),
            i.Routes.Where(r => i.Serves(r.Host)).Select(r => new RenderedRouteDto(r.Host, r.Path, r.PodId, r.Port, Backends(pods.GetValueOrDefault(r.PodId), i.TenantId, r.Port)))
                .ToList())).ToList());
    }

    /// <summary>Only running microVMs of the route's own tenant take traffic.</summary>
    private static IReadOnlyList<string> Backends(Pod? pod, Guid tenant, int port) => pod is null || pod.TenantId != tenant || pod.Deleting
        ? []
        : pod.Live.Where(i => i.Phase == VmPhase.Running && i.Ip4 is not null).OrderBy(i => i.Replica).Select(i => $"{i.Ip4}:{port}").ToList();
}
