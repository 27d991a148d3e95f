namespace Kraud.Domain.Access;

public enum Role
{
    Operator,
    Admin,
    Member,
    Auditor,
}

/// <summary>Who is asking: resolved from the bearer token before any command is built.</summary>
public sealed record Principal(string TokenId, Role Role, Guid? TenantId, string Name)
{
    /// <summary>The audit log's name for this principal.</summary>
    public string Actor => TokenId.StartsWith("system:", StringComparison.Ordinal) ? TokenId : $"token:{TokenId}";

    /// <summary>Operators and platform auditors (an AUDITOR without a tenant) read across tenants.</summary>
    public bool ReadsAllTenants => Role == Role.Operator || (Role == Role.Auditor && TenantId is null);

    /// <summary>Platform components (scheduler, host runtimes) act as themselves, with operator rights.</summary>
    public static Principal System(string component) => new($"system:{component}", Role.Operator, null, component);

    /// <summary>Auditors read; every command refuses them before it looks at anything.</summary>
    public void RequireWriter()
    {
        if (Role == Role.Auditor) throw Common.DomainException.Forbidden("AUDITOR tokens are read-only.");
    }

    /// <summary>The tenant this principal acts for; operators must name one.</summary>
    public Guid RequireTenant(Guid? requested = null)
    {
        if (TenantId is { } own)
        {
            if (requested is { } other && other != own)
                throw Common.DomainException.Forbidden("A tenant token can only act on its own tenant.");
            return own;
        }
        return requested ?? throw Common.DomainException.Validation(
            "This token belongs to no tenant: use a token of the tenant whose resources you want to change.");
    }
}
