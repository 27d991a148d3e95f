using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.Access;
using Kraud.Projections.Access;
using Marten;

namespace Kraud.Api.Common;

/// <summary>Turns an Authorization header into a principal, or null when it names no valid token.</summary>
public sealed class TokenAuthenticator(IDocumentStore store, IConfiguration configuration)
{
    public const string BootstrapVariable = "KRAUD_BOOTSTRAP_TOKEN";
    public const string BootstrapTokenId = "bootstrap";

    private static readonly object RequestItem = new();

    /// <summary>The request's caller, looked up once per request: the idempotency middleware and the endpoint both ask.</summary>
    public async Task<Principal?> AuthenticateAsync(HttpContext http)
    {
        if (http.Items.TryGetValue(RequestItem, out var known)) return (Principal?)known;
        var principal = await AuthenticateAsync(http.Request.Headers.Authorization.ToString(), http.RequestAborted);
        http.Items[RequestItem] = principal;
        return principal;
    }

    public async Task<Principal?> AuthenticateAsync(string? authorization, CancellationToken ct)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return null;
        var secret = authorization["Bearer ".Length..].Trim();
        if (secret.Length == 0) return null;

        var bootstrap = configuration[BootstrapVariable];
        if (!string.IsNullOrEmpty(bootstrap) &&
            CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(bootstrap)))
            return new Principal(BootstrapTokenId, Role.Operator, null, "bootstrap");

        var hash = TokenSecrets.Sha256(secret);
        await using var session = store.QuerySession();
        var token = await session.Query<ApiTokenView>().FirstOrDefaultAsync(t => t.SecretSha256 == hash, ct);
        return token is null || token.Revoked ? null : new Principal(token.Id.ToString(), token.Role, token.TenantId, token.Name);
    }
}
