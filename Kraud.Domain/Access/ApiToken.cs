using Kraud.Domain.Common;

namespace Kraud.Domain.Access;

public sealed record ApiTokenIssued(Guid TokenId, Guid? TenantId, Role Role, string Name, string SecretSha256, string IssuedBy, DateTimeOffset At);
public sealed record ApiTokenRevoked(Guid TokenId, string RevokedBy, DateTimeOffset At);

public sealed record ApiToken(Guid Id, Guid? TenantId, Role Role, string Name, bool Exists, bool Revoked) : IState<ApiToken>
{
    public static ApiToken Initial { get; } = new(Guid.Empty, null, Role.Member, "", false, false);

    public ApiToken Evolve(object @event) => @event switch
    {
        ApiTokenIssued e => new ApiToken(e.TokenId, e.TenantId, e.Role, e.Name, true, false),
        ApiTokenRevoked => this with { Revoked = true },
        _ => this,
    };
}

public sealed record IssueApiToken(Guid TokenId, Guid? TenantId, Role Role, string Name, string SecretSha256, Principal By, DateTimeOffset At);
public sealed record RevokeApiToken(Guid TokenId, Principal By, DateTimeOffset At);

public static class ApiTokenDecider
{
    /// <summary>
    /// Operators issue any token; a tenant's ADMIN issues tokens for its own tenant only, never OPERATOR ones.
    /// An AUDITOR without a tenant reads every tenant's audit data, so only an operator can make one.
    /// </summary>
    public static IReadOnlyList<object> Decide(IssueApiToken c, ApiToken state)
    {
        if (state.Exists) throw DomainException.Conflict($"API token {c.TokenId} exists already.");
        Names.RequireText(c.Name, "name", 100);
        var tenant = c.TenantId;
        switch (c.By.Role)
        {
            case Role.Operator:
                if (c.Role == Role.Operator && tenant is not null)
                    throw DomainException.Validation("An OPERATOR token belongs to the platform, not to a tenant: leave tenantId empty.");
                if (c.Role is Role.Admin or Role.Member && tenant is null)
                    throw DomainException.Validation($"A {c.Role.ToString().ToUpperInvariant()} token needs a tenantId.");
                break;
            case Role.Admin:
                tenant = c.By.RequireTenant(tenant);
                if (c.Role == Role.Operator)
                    throw DomainException.Forbidden("Only an operator can issue OPERATOR tokens.");
                break;
            default:
                throw DomainException.Forbidden("Only an operator or the tenant's ADMIN can issue API tokens.");
        }
        return [new ApiTokenIssued(c.TokenId, tenant, c.Role, c.Name, c.SecretSha256, c.By.Actor, c.At)];
    }

    public static IReadOnlyList<object> Decide(RevokeApiToken c, ApiToken state)
    {
        var visible = state.Exists && (c.By.Role == Role.Operator || (c.By.Role == Role.Admin && state.TenantId == c.By.TenantId && state.TenantId is not null));
        if (!visible)
        {
            if (c.By.Role is Role.Member or Role.Auditor) throw DomainException.Forbidden("Only an operator or the tenant's ADMIN can revoke API tokens.");
            throw DomainException.NotFound("API token", c.TokenId);
        }
        return state.Revoked ? [] : [new ApiTokenRevoked(c.TokenId, c.By.Actor, c.At)];
    }
}
