using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Api.Common;

/// <summary>The REST side of the audit log's access rules (the same as auditLog's): who may read, and whose entries.</summary>
public static class AuditReaderAccess
{
    /// <summary>
    /// The tenant whose data the caller may read (null: every tenant), or false after an error response (401, 403 or
    /// 400 with a code) has been sent.
    /// </summary>
    public static async Task<(bool Allowed, Guid? Scope)> AuthorizeAsync(HttpContext http, TokenAuthenticator authenticator, Guid? requestedTenant,
        string format, IReadOnlyCollection<string> formats, CancellationToken ct)
    {
        var principal = await authenticator.AuthenticateAsync(http.Request.Headers.Authorization.ToString(), ct);
        if (principal is null)
        {
            await Refuse(http, 401, "UNAUTHENTICATED", "Send a valid API token: Authorization: Bearer <token>.", ct);
            return (false, null);
        }
        try
        {
            var scope = ScopeOf(principal, requestedTenant);
            if (!formats.Contains(format)) throw DomainException.Validation($"format '{format}' is not one of {string.Join(", ", formats)}.");
            return (true, scope);
        }
        catch (DomainException e)
        {
            await Refuse(http, e.Code == ErrorCode.Forbidden ? 403 : 400, e.ContractCode, e.Message, ct);
            return (false, null);
        }
    }

    /// <summary>Whose entries a principal may read: null means every tenant's.</summary>
    public static Guid? ScopeOf(Principal principal, Guid? requested) => principal switch
    {
        { ReadsAllTenants: true } => requested,
        { Role: Role.Admin or Role.Auditor } => principal.RequireTenant(requested),
        _ => throw DomainException.Forbidden("The audit log is readable by operators, auditors and the tenant's ADMIN."),
    };

    private static Task Refuse(HttpContext http, int status, string code, string message, CancellationToken ct)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new { error = code, message }, ct);
    }
}
