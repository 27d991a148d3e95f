using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Ingresses;

namespace Kraud.HostRuntime.Ingress;

/// <summary>
/// The policy of AUTHENTICATED ingresses, checked on every request before it enters the VPC. BASIC: the user's password
/// against its PBKDF2 hash (a verified header is remembered, so only the first request pays the stretching). SAML is not
/// served: such an ingress answers 501 saying so. Whoever passes is named to the upstream in <see cref="UserHeader"/>.
/// </summary>
public sealed class IngressAuthenticator
{
    public const string UserHeader = "X-Kraud-User";

    /// <summary>SHA-256 of (ingress, Authorization header) → user, for headers verified under the current configuration.</summary>
    private volatile ConcurrentDictionary<string, string> _verified = new();

    public sealed record Verdict(string? User, int Status, string Message, string? Challenge);

    /// <summary>A new configuration may have changed or removed users: what was verified is forgotten.</summary>
    public void Use(IReadOnlyList<IngressSite> sites) => _verified = new ConcurrentDictionary<string, string>();

    public Task<Verdict> CheckAsync(IngressSite site, IngressSiteAuth auth, string authorization, CancellationToken ct) =>
        auth.Method.ToUpperInvariant() switch
        {
            "BASIC" => Task.FromResult(Basic(site, auth, authorization)),
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

    private static readonly string Unknown = PasswordHash.Of(Guid.NewGuid().ToString(), RandomNumberGenerator.GetBytes(16));
}
