using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Ingresses;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Kraud.HostRuntime.Ingress;

/// <summary>
/// The policy of AUTHENTICATED ingresses, checked on every request before it enters the VPC. BASIC: the user's password
/// against its PBKDF2 hash (a verified header is remembered, so only the first request pays the stretching). OIDC: a
/// bearer token (JWT) signed by a key of the issuer's JWKS (found through its discovery document, refetched when a token
/// names a key it does not know), for the ingress's audience, within its lifetime, and, when the ingress names groups, a
/// member of one. SAML is not served: such an ingress answers 501 saying so. Whoever passes is named to the upstream in
/// <see cref="UserHeader"/>.
/// </summary>
public sealed class IngressAuthenticator : IDisposable
{
    public const string UserHeader = "X-Kraud-User";

    /// <summary>Tokens are signed with asymmetric keys only: an "alg: none" or HMAC token is no proof of the issuer.</summary>
    private static readonly string[] SigningAlgorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512, SecurityAlgorithms.RsaSsaPssSha256,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    /// <summary>SHA-256 of (ingress, Authorization header) → user, for headers verified under the current configuration.</summary>
    private volatile ConcurrentDictionary<string, string> _verified = new();

    private readonly ConcurrentDictionary<string, ConfigurationManager<OpenIdConnectConfiguration>> _issuers = new(StringComparer.Ordinal);
    private readonly HttpClient _metadata;
    private readonly JsonWebTokenHandler _tokens = new();

    /// <param name="trustedCaFile">Extra roots for issuers' metadata (Fleet:IngressTrustedCaFile); null trusts the system's only.</param>
    public IngressAuthenticator(string? trustedCaFile = null)
    {
        var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5) };
        if (trustedCaFile is not null)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(trustedCaFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (errors == SslPolicyErrors.None) return true;
                if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch)) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(certificate));
            };
        }
        _metadata = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
    }

    public sealed record Verdict(string? User, int Status, string Message, string? Challenge);

    /// <summary>A new configuration may have changed or removed users: what was verified is forgotten.</summary>
    public void Use(IReadOnlyList<IngressSite> sites) => _verified = new ConcurrentDictionary<string, string>();

    public Task<Verdict> CheckAsync(IngressSite site, IngressSiteAuth auth, string authorization, CancellationToken ct) =>
        auth.Method.ToUpperInvariant() switch
        {
            "BASIC" => Task.FromResult(Basic(site, auth, authorization)),
            "OIDC" => OidcAsync(site, auth, authorization, ct),
            "SAML" => Task.FromResult(new Verdict(null, 501, $"ingress {site.Name}: SAML authentication is not served by Kraud's ingress proxy yet; use OIDC or BASIC.", null)),
            _ => Task.FromResult(new Verdict(null, 501, $"ingress {site.Name}: authentication method {auth.Method} is not served.", null)),
        };

    private Verdict Basic(IngressSite site, IngressSiteAuth auth, string authorization)
    {
        var challenge = $"Basic realm=\"{site.Name}\", charset=\"UTF-8\"";
        if (!authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return new Verdict(null, 401, "credentials required", challenge);
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{site.IngressId}\n{authorization}")));
        var verified = _verified;
        if (verified.TryGetValue(key, out var known)) return new Verdict(known, 200, "", null);
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization[6..].Trim()));
        }
        catch (FormatException)
        {
            return new Verdict(null, 401, "malformed credentials", challenge);
        }
        var colon = decoded.IndexOf(':');
        if (colon <= 0) return new Verdict(null, 401, "malformed credentials", challenge);
        var (name, password) = (decoded[..colon], decoded[(colon + 1)..]);
        var user = auth.Users.FirstOrDefault(u => u.Username == name);
        // A missing user costs the same as a wrong password, so that names cannot be probed by timing.
        var ok = PasswordHash.Verify(password, user?.PasswordHash ?? Unknown) && user is not null;
        if (!ok) return new Verdict(null, 401, "wrong credentials", challenge);
        verified[key] = name;
        return new Verdict(name, 200, "", null);
    }

    private async Task<Verdict> OidcAsync(IngressSite site, IngressSiteAuth auth, string authorization, CancellationToken ct)
    {
        var challenge = $"Bearer realm=\"{site.Name}\"";
        if (auth.Issuer is null || auth.Audience is null) return new Verdict(null, 500, $"ingress {site.Name}: its OIDC policy names no issuer or audience.", null);
        if (!authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return new Verdict(null, 401, "bearer token required", challenge);
        var issuer = _issuers.GetOrAdd(auth.Issuer, url => new ConfigurationManager<OpenIdConnectConfiguration>(
            url.TrimEnd('/') + "/.well-known/openid-configuration", new OpenIdConnectConfigurationRetriever(), new HttpDocumentRetriever(_metadata) { RequireHttps = true }));
        try
        {
            // Cached by the manager (refreshed daily, or sooner when a token names an unknown key): a request pays nothing.
            await issuer.GetConfigurationAsync(ct);
        }
        catch (InvalidOperationException e)
        {
            return new Verdict(null, 503, $"ingress {site.Name}: the OIDC issuer {auth.Issuer} cannot be reached to check tokens ({e.GetBaseException().Message}).", null);
        }
        var result = await _tokens.ValidateTokenAsync(authorization[7..].Trim(), new TokenValidationParameters
        {
            ConfigurationManager = issuer,
            ValidIssuer = auth.Issuer,
            ValidAudience = auth.Audience,
            ValidAlgorithms = SigningAlgorithms,
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.FromSeconds(30),
        });
        if (!result.IsValid) return new Verdict(null, 401, $"invalid token: {Reason(result.Exception)}", challenge + ", error=\"invalid_token\"");
        var claims = result.ClaimsIdentity.Claims.ToList();
        if (auth.AllowedGroups.Count > 0 && !claims.Any(c => c.Type == "groups" && auth.AllowedGroups.Contains(c.Value, StringComparer.Ordinal)))
            return new Verdict(null, 403, $"the token's groups include none of those ingress {site.Name} admits.", null);
        var user = claims.FirstOrDefault(c => c.Type == "preferred_username")?.Value ?? claims.FirstOrDefault(c => c.Type == "email")?.Value
            ?? claims.FirstOrDefault(c => c.Type == "sub")?.Value;
        return user is null ? new Verdict(null, 401, "invalid token: it names no subject", challenge + ", error=\"invalid_token\"") : new Verdict(user, 200, "", null);
    }

    /// <summary>What a client may learn of why its token was refused, without the library's internals.</summary>
    private static string Reason(Exception? e) => e switch
    {
        SecurityTokenExpiredException => "expired",
        SecurityTokenNotYetValidException => "not yet valid",
        SecurityTokenInvalidAudienceException => "not for this audience",
        SecurityTokenInvalidIssuerException => "not from this issuer",
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "not signed by the issuer's keys",
        SecurityTokenInvalidAlgorithmException => "signed with an algorithm not accepted",
        _ => "malformed",
    };

    private static readonly string Unknown = PasswordHash.Of(Guid.NewGuid().ToString(), RandomNumberGenerator.GetBytes(16));

    public void Dispose() => _metadata.Dispose();
}
