using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Kraud.Api.Kubernetes;

/// <summary>
/// The private key of a cluster's CA. A document, never an event: the event log is exported to auditors, and no API
/// returns this key; kubeconfig hands out client certificates signed with it.
/// </summary>
public sealed class ClusterCaKey
{
    public Guid Id { get; set; }
    public string KeyPem { get; set; } = "";
}

public sealed record IssuedCertificate(string CertificatePem, string KeyPem, string SerialNumber, DateTimeOffset NotAfter);

/// <summary>A cluster's PKI, made with .NET's X.509 APIs: an ECDSA P-256 CA per cluster and client certificates under it.</summary>
public static class ClusterCertificates
{
    public static readonly TimeSpan ClientValidity = TimeSpan.FromDays(30);

    public static (string CertificatePem, string KeyPem) CreateCa(string clusterName, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=kubernetes-ca {clusterName}, O=Kraud", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var ca = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(10));
        return (ca.ExportCertificatePem(), key.ExportECPrivateKeyPem());
    }

    /// <summary>A client certificate as Kubernetes reads it: CN is the user, O the group (system:masters is cluster-admin).</summary>
    public static IssuedCertificate IssueClient(string caCertificatePem, string caKeyPem, string user, string group, DateTimeOffset now)
    {
        using var ca = X509Certificate2.CreateFromPem(caCertificatePem, caKeyPem);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedNameBuilder().Let(b =>
        {
            b.AddOrganizationName(group);
            b.AddCommonName(user);
        }).Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2", "clientAuth")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        // Positive (RFC 5280) and without a leading zero byte: DER drops one, and the certificate's serial would no longer be
        // the hex string the cluster recorded (a client certificate refused as not issued, one time in 128).
        serial[0] = (byte)(serial[0] % 0x7F + 1);
        var notAfter = now + ClientValidity;
        using var certificate = request.Create(ca, now.AddMinutes(-5), notAfter, serial);
        return new IssuedCertificate(certificate.ExportCertificatePem(), key.ExportECPrivateKeyPem(), Convert.ToHexString(serial), notAfter);
    }

    private static X500DistinguishedNameBuilder Let(this X500DistinguishedNameBuilder builder, Action<X500DistinguishedNameBuilder> build)
    {
        build(builder);
        return builder;
    }
}
