using System.Security.Cryptography;
using System.Text;
using Kraud.Api.Common;
using NSec.Cryptography;

namespace Kraud.Api.Audit;

/// <summary>
/// The platform's Ed25519 key for audit digests and exports. Made on first start and kept in the state directory
/// (mode 0600), or read from Kraud:AuditSigningKeyFile, which several API nodes must share. Only its public half leaves
/// this class.
/// </summary>
public sealed class AuditSigningKey : IDisposable
{
    public const string DefaultFile = "audit-signing.key";
    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private AuditSigningKey(Key key)
    {
        _key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        KeyId = KeyIdOf(PublicKey);
    }

    public byte[] PublicKey { get; }
    public string KeyId { get; }

    public static string KeyIdOf(byte[] publicKey) => Convert.ToHexStringLower(SHA256.HashData(publicKey))[..16];

    public static AuditSigningKey Load(IConfiguration configuration)
    {
        var path = configuration["Kraud:AuditSigningKeyFile"] ?? Path.Combine(KraudDatabase.StateDirectory(configuration), DefaultFile);
        if (File.Exists(path))
            return new AuditSigningKey(Key.Import(Ed25519, Convert.FromBase64String(File.ReadAllText(path).Trim()), KeyBlobFormat.RawPrivateKey,
                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None }));
        var key = Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, Convert.ToBase64String(key.Export(KeyBlobFormat.RawPrivateKey)) + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return new AuditSigningKey(key);
    }

    public string Sign(string message) => Convert.ToBase64String(Ed25519.Sign(_key, Encoding.UTF8.GetBytes(message)));

    public static bool Verify(byte[] publicKey, string message, string signature)
    {
        try
        {
            var key = NSec.Cryptography.PublicKey.Import(Ed25519, publicKey, KeyBlobFormat.RawPublicKey);
            return Ed25519.Verify(key, Encoding.UTF8.GetBytes(message), Convert.FromBase64String(signature));
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            return false;
        }
    }

    public void Dispose() => _key.Dispose();
}

/// <summary>What exactly is signed: one place, shared by the signer and the offline verifier.</summary>
public static class AuditSignatures
{
    public static string Digest(long headSeq, string headHash, DateTimeOffset signedAt) =>
        $"kraud-audit-digest/v1\n{headSeq}\n{headHash}\n{signedAt.UtcDateTime:O}";

    public static string Export(string sha256, long entries, bool contiguous, long headSeq, string headHash, DateTimeOffset signedAt) =>
        $"kraud-audit-export/v1\n{sha256}\n{entries}\n{(contiguous ? "contiguous" : "slice")}\n{headSeq}\n{headHash}\n{signedAt.UtcDateTime:O}";
}
