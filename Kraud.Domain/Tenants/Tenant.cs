using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.Tenants;

public sealed record TenantCreated(Guid TenantId, string Name, string CreatedBy, DateTimeOffset At);

public sealed record Tenant(Guid Id, string Name, bool Exists, DateTimeOffset CreatedAt) : IState<Tenant>
{
    public static Tenant Initial { get; } = new(Guid.Empty, "", false, default);

    public Tenant Evolve(object @event) => @event switch
    {
        TenantCreated e => new Tenant(e.TenantId, e.Name, true, e.At),
        _ => this,
    };
}

public sealed record CreateTenant(Guid TenantId, string Name, Principal By, DateTimeOffset At);

public static class TenantDecider
{
    public static IReadOnlyList<object> Decide(CreateTenant c, Tenant state)
    {
        if (c.By.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can create tenants.");
        if (state.Exists) throw DomainException.Conflict($"Tenant {c.TenantId} exists already.");
        Names.RequireDnsLabel(c.Name, "name");
        return [new TenantCreated(c.TenantId, c.Name, c.By.Actor, c.At)];
    }
}
