using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// An OpenID Connect issuer of the test's own, as an identity provider behind a private CA would be: HTTPS on 127.0.0.1 with
/// a certificate of <paramref name="ca"/>, a discovery document and a JWKS with one RSA key, and tokens signed by it (or by a
/// key it does not publish, for the specs that must be refused).
/// </summary>
public sealed class TestOidcIssuer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly RsaSecurityKey _key;

    private TestOidcIssuer(WebApplication app, RsaSecurityKey key, string url)
    {
        _app = app;
        _key = key;
        Url = url;
    }

    /// <summary>The issuer (iss) and the base of its discovery document.</summary>
    public string Url { get; }

    /// <summary>The ingress CA's roots of trust: the issuer's certificate chains to <paramref name="ca"/>.</summary>
    public static async Task<TestOidcIssuer> StartAsync(X509Certificate2 ca)
    {
        var key = new RsaSecurityKey(RSA.Create(2048)) { KeyId = $"k-{Guid.NewGuid():N}"[..10] };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var certificate = ServerCertificate(ca);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.UseHttps(certificate)));
        var app = builder.Build();
        string? url = null;
        app.MapGet("/.well-known/openid-configuration", () => Results.Json(new Dictionary<string, object>
        {
            ["issuer"] = url!, ["jwks_uri"] = url + "/jwks", ["id_token_signing_alg_values_supported"] = new[] { "RS256" },
            ["response_types_supported"] = new[] { "code" }, ["subject_types_supported"] = new[] { "public" },
        }));
        app.MapGet("/jwks", () =>
        {
            var jwk = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(key.Rsa.ExportParameters(false)) { KeyId = key.KeyId });
            return Results.Json(new { keys = new[] { new { kty = "RSA", use = "sig", alg = "RS256", kid = jwk.Kid, n = jwk.N, e = jwk.E } } });
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        url = address.Replace("[::1]", "127.0.0.1", StringComparison.Ordinal).TrimEnd('/');
        return new TestOidcIssuer(app, key, url);
    }

    /// <summary>A token for <paramref name="audience"/> naming the user; signed by the published key unless <paramref name="foreign"/>.</summary>
    public string Token(string audience, string user, TimeSpan? lifetime = null, bool foreign = false, string[]? groups = null)
    {
        var now = DateTime.UtcNow;
        var expires = now + (lifetime ?? TimeSpan.FromMinutes(5));
        var claims = new List<Claim> { new("sub", $"sub-{user}"), new("preferred_username", user) };
        claims.AddRange((groups ?? []).Select(g => new Claim("groups", g)));
        // A foreign key claims the published key's id: only the signature can tell them apart.
        var key = foreign ? new RsaSecurityKey(RSA.Create(2048)) { KeyId = _key.KeyId } : _key;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Url, Audience = audience, Subject = new ClaimsIdentity(claims),
            IssuedAt = expires < now ? expires - TimeSpan.FromMinutes(10) : now, NotBefore = expires < now ? expires - TimeSpan.FromMinutes(10) : now,
            Expires = expires, SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.RsaSha256),
        });
    }

    private static X509Certificate2 ServerCertificate(X509Certificate2 ca)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(12));
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A CA for issuers' certificates, as an organisation's private CA is.</summary>
    public static X509Certificate2 NewCa()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=Kraud test OIDC CA {Guid.NewGuid():N}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
        return X509CertificateLoader.LoadPkcs12(ca.Export(X509ContentType.Pkcs12), null);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
