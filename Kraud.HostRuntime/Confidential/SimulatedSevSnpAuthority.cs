using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Kraud.HostRuntime.Confidential;

/// <summary>
/// The simulated fleet's stand-in for AMD's key distribution: a test root (like AMD's ARK) and an intermediate (like the
/// ASK), both ECDSA P-384, that certify each simulated SEV-SNP host's attestation key (like a VCEK). Kept as PEM files in
/// one directory so the control plane and every host runtime process of a test or lab fleet share one root. It is a TEST
/// authority: whoever can read its directory can certify hosts, which AMD's real chain does not allow.
/// </summary>
public sealed class SimulatedSevSnpAuthority : IDisposable
{
    private const string RootFile = "ark.pem", RootKeyFile = "ark.key.pem", IntermediateFile = "ask.pem", IntermediateKeyFile = "ask.key.pem";

    private readonly X509Certificate2 _intermediateWithKey;

    public X509Certificate2 Root { get; }
    public X509Certificate2 Intermediate { get; }

    private SimulatedSevSnpAuthority(X509Certificate2 root, X509Certificate2 intermediateWithKey)
    {
        Root = root;
        _intermediateWithKey = intermediateWithKey;
        Intermediate = X509CertificateLoader.LoadCertificate(intermediateWithKey.RawData);
    }

    /// <summary>The root certificate in a directory made by <see cref="LoadOrCreate"/>, without loading any key (what a verifier needs).</summary>
    public static X509Certificate2 RootOf(string directory) => LoadOrCreate(directory).Root;

    /// <summary>Loads the authority, or makes one. Processes racing to make it agree on one: the first complete directory wins.</summary>
    public static SimulatedSevSnpAuthority LoadOrCreate(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (!File.Exists(Path.Combine(directory, IntermediateKeyFile)))
        {
            var parent = Path.GetDirectoryName(directory)!;
            Directory.CreateDirectory(parent);
            var staging = Path.Combine(parent, $".{Path.GetFileName(directory)}-{Guid.NewGuid():N}");
            Directory.CreateDirectory(staging);
            try
            {
                Write(staging);
                // Atomic: either this directory or a concurrent maker's becomes the authority, never a mix of both.
                Directory.Move(staging, directory);
            }
            catch (IOException) when (File.Exists(Path.Combine(directory, IntermediateKeyFile)))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
        var root = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(directory, RootFile)));
        var intermediate = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(directory, IntermediateFile)),
            File.ReadAllText(Path.Combine(directory, IntermediateKeyFile)));
        return new SimulatedSevSnpAuthority(root, intermediate);
    }

    /// <summary>Certifies a host's attestation key; the certificate's common name is the host's name.</summary>
    public X509Certificate2 Certify(string hostName, ECDsa key)
    {
        var request = new CertificateRequest($"CN={hostName}, OU=Kraud simulated SEV-SNP VCEK", key, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_intermediateWithKey, true, false));
        var now = DateTimeOffset.UtcNow;
        return request.Create(_intermediateWithKey, now.AddDays(-1), now.AddYears(7), RandomNumberGenerator.GetBytes(16));
    }

    /// <summary>A root and intermediate of their own, in memory: what a forger would present (fault injection).</summary>
    public static SimulatedSevSnpAuthority CreateInMemory()
    {
        var (root, intermediate) = Make("Kraud rogue");
        return new SimulatedSevSnpAuthority(X509CertificateLoader.LoadCertificate(root.RawData), intermediate);
    }

    private static void Write(string directory)
    {
        var (root, intermediate) = Make("Kraud simulated");
        File.WriteAllText(Path.Combine(directory, RootFile), root.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, RootKeyFile), root.GetECDsaPrivateKey()!.ExportECPrivateKeyPem());
        File.WriteAllText(Path.Combine(directory, IntermediateFile), intermediate.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, IntermediateKeyFile), intermediate.GetECDsaPrivateKey()!.ExportECPrivateKeyPem());
        if (!OperatingSystem.IsWindows())
            foreach (var file in new[] { RootKeyFile, IntermediateKeyFile })
                File.SetUnixFileMode(Path.Combine(directory, file), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private static (X509Certificate2 Root, X509Certificate2 Intermediate) Make(string name)
    {
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var rootRequest = new CertificateRequest($"CN={name} ARK (test root)", rootKey, HashAlgorithmName.SHA384);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        rootRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(rootRequest.PublicKey, false));
        var root = rootRequest.CreateSelfSigned(now.AddDays(-1), now.AddYears(25));

        using var askKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var askRequest = new CertificateRequest($"CN={name} ASK (test intermediate)", askKey, HashAlgorithmName.SHA384);
        askRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        askRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        askRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(askRequest.PublicKey, false));
        askRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var ask = askRequest.Create(root, now.AddDays(-1), now.AddYears(25), RandomNumberGenerator.GetBytes(16));
        return (root, ask.CopyWithPrivateKey(askKey));
    }

    public void Dispose()
    {
        Root.Dispose();
        Intermediate.Dispose();
        _intermediateWithKey.Dispose();
    }
}
