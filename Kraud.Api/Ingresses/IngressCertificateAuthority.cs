using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Kraud.Api.Common;
using Kraud.Api.Configuration;
using Kraud.Domain.HostProtocol;
using Microsoft.Extensions.Configuration;

namespace Kraud.Api.Ingresses;

/// <summary>
/// Kraud's own CA for ingress TLS (ECDSA P-256): made once in the state directory (Ingress:CaDirectory, default
/// &lt;state&gt;/ingress-ca: ca.pem, and ca.key with mode 0600), shared by API nodes that share the directory. Clients trust
/// ca.pem; every push to an ingress host carries a fresh leaf for *.ingress.kraud.cloud and the verified custom domains
/// it serves. An ACME issuer can replace it for public names.
/// </summary>
public sealed class IngressCertificateAuthority
{
    private readonly X509Certificate2 _ca;
    private readonly ECDsa _key;

    private IngressCertificateAuthority(X509Certificate2 ca, ECDsa key)
    {
        _ca = ca;
        _key = key;
    }

    public string CertificatePem => _ca.ExportCertificatePem();

    public static IngressCertificateAuthority LoadOrCreate(IConfiguration configuration)
    {
        var directory = configuration["Ingress:CaDirectory"] ?? Path.Combine(KraudDatabase.StateDirectory(configuration), "ingress-ca");
        var (certFile, keyFile) = (Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
        if (!File.Exists(certFile) || !File.Exists(keyFile))
        {
            Directory.CreateDirectory(directory);
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=Kraud Ingress CA, O=Kraud", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(10));
            // Key first, written under a temporary name: a reader never finds a certificate without its key.
            var temporary = keyFile + ".tmp";
            File.WriteAllText(temporary, "");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.WriteAllText(temporary, key.ExportPkcs8PrivateKeyPem());
            File.Move(temporary, keyFile, overwrite: true);
            File.WriteAllText(certFile, ca.ExportCertificatePem());
        }
        var loadedKey = ECDsa.Create();
        loadedKey.ImportFromPem(File.ReadAllText(keyFile));
        return new IngressCertificateAuthority(X509Certificate2.CreateFromPem(File.ReadAllText(certFile)), loadedKey);
    }

    /// <summary>A server certificate for these names (30 days; every change of an ingress host's configuration brings a new one).</summary>
    public IngressCertificate Issue(IReadOnlyList<string> names, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names) san.AddDnsName(name);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var certificate = request.Create(_ca.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), now.AddMinutes(-5), now.AddDays(30), serial);
        return new IngressCertificate(names, certificate.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }
}
