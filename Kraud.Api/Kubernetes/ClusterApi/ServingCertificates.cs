using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Kraud.Api.Kubernetes;
using Kraud.Projections.Kubernetes;
using Marten;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// Each cluster's serving certificate, signed by the cluster's own CA (the one in its kubeconfig) for the server name
/// &lt;cluster id&gt;.k8s.kraud.internal. Made on the first handshake and kept in memory only (its key never leaves the process).
/// </summary>
public sealed class ServingCertificates(IDocumentStore store, TimeProvider time)
{
    public const string Domain = "k8s.kraud.internal";

    private readonly ConcurrentDictionary<Guid, SslStreamCertificateContext> cache = new();

    public static string ServerName(Guid clusterId) => $"{clusterId:N}.{Domain}";

    public async Task<SslStreamCertificateContext?> ForServerNameAsync(string? serverName, CancellationToken ct)
    {
        if (serverName is null || !serverName.EndsWith("." + Domain, StringComparison.OrdinalIgnoreCase)) return null;
        if (!Guid.TryParseExact(serverName[..^(Domain.Length + 1)], "N", out var clusterId)) return null;
        if (cache.TryGetValue(clusterId, out var known)) return known;
        await using var session = store.QuerySession();
        var view = await session.LoadAsync<KubernetesClusterView>(clusterId, ct);
        var key = await session.LoadAsync<ClusterCaKey>(clusterId, ct);
        if (view is null || key is null) return null;
        return cache.GetOrAdd(clusterId, _ => Issue(view.Cluster.CaCertificatePem, key.KeyPem, serverName.ToLowerInvariant(), time.GetUtcNow()));
    }

    private static SslStreamCertificateContext Issue(string caPem, string caKeyPem, string serverName, DateTimeOffset now)
    {
        using var ca = X509Certificate2.CreateFromPem(caPem, caKeyPem);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={serverName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(serverName);
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1", "serverAuth")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var issued = request.Create(ca, now.AddMinutes(-5), now.AddYears(1), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        // Through PKCS#12, so that SslStream on Linux gets a key it can use for the handshake.
        var leaf = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        var caOnly = X509CertificateLoader.LoadCertificate(ca.RawData);
        return SslStreamCertificateContext.Create(leaf, [caOnly], offline: true);
    }
}
