using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.HostProtocol;
using Kraud.Projections.Ingresses;
using Marten;

namespace Kraud.Api.Ingresses;

/// <summary>One request an ingress proxy answered. Documents, not events: requests are many and not decisions.</summary>
public sealed class IngressAccessLogEntry
{
    public Guid Id { get; set; }
    public Guid IngressId { get; set; }
    public Guid TenantId { get; set; }
    public Guid HostId { get; set; }
    public DateTimeOffset At { get; set; }
    public string Host { get; set; } = "";
    public string Path { get; set; } = "";
    public int Status { get; set; }
    public string? Upstream { get; set; }
    public double DurationMs { get; set; }
}

/// <summary>Requests an ingress host's proxy served: kept per ingress (with its tenant) for the tenant's access log.</summary>
public static class IngressRequestsServedHandler
{
    public static async Task Handle(IngressRequestsServed report, IDocumentSession session)
    {
        var ids = report.Requests.Select(r => r.IngressId).Distinct().ToArray();
        var tenants = (await session.LoadManyAsync<IngressView>(ids)).ToDictionary(v => v.Id, v => v.TenantId);
        foreach (var r in report.Requests.Where(r => tenants.ContainsKey(r.IngressId)))
            session.Insert(new IngressAccessLogEntry
            {
                Id = Guid.CreateVersion7(r.At), IngressId = r.IngressId, TenantId = tenants[r.IngressId], HostId = report.HostId, At = r.At, Host = r.Host,
                Path = r.Path, Status = r.Status, Upstream = r.Upstream, DurationMs = r.DurationMs,
            });
    }
}

public sealed record IngressAccessLogEntryDto(DateTimeOffset At, Guid HostId, string Host, string Path, int Status, string? Upstream, double DurationMs);

/// <summary>ingressAccessLog and IngressReplica.endpoint.</summary>
public static class IngressAccessLogFields
{
    public static void Map(Fields fields)
    {
        fields.Query("ingressAccessLog", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (principal.Role == Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens read audit data only.");
            var ingress = await IngressFields.LoadAsync(ctx, Ids.Parse(ctx.GetArgument<string>("ingressId"), "Ingress"));
            var first = Math.Clamp(ctx.GetArgument<int?>("first") ?? 100, 1, 1000);
            return (await ctx.Service<IQuerySession>().Query<IngressAccessLogEntry>()
                    .Where(e => e.IngressId == ingress.Id && e.TenantId == ingress.TenantId).OrderByDescending(e => e.At).Take(first)
                    .ToListAsync(ctx.CancellationToken))
                .Select(e => new IngressAccessLogEntryDto(e.At, e.HostId, e.Host, e.Path, e.Status, e.Upstream, e.DurationMs)).ToList();
        });
        fields.On("IngressReplica", "endpoint", async ctx =>
            (await ctx.Service<IQuerySession>().LoadAsync<Kraud.Projections.Fleet.HostView>(((IngressReplicaDto)ctx.Source!).HostId, ctx.CancellationToken))
            ?.Host.IngressEndpoint);
    }
}
