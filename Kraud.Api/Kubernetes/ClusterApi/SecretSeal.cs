using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.HostRuntime.Storage;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// A Secret's values, sealed (AES-256-GCM under the control plane's secret key) in a document of their own: never in an
/// event, never in a table in clear. Deleted with the Secret.
/// </summary>
public sealed class KubeSecretData
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public Guid ClusterId { get; set; }
    public string Sealed { get; set; } = "";
}

/// <summary>
/// The control plane's key for Kubernetes Secrets: made at first start in the state directory (0600), or
/// Kubernetes:SecretKeyFile to share one between API nodes (a KMS in a real datacenter).
/// </summary>
public sealed class SecretSeal
{
    private readonly byte[] key;

    private SecretSeal(byte[] key) => this.key = key;

    public static SecretSeal Load(IConfiguration configuration) =>
        new(KeyFile.LoadOrCreate(configuration["Kubernetes:SecretKeyFile"] ?? Path.Combine(KraudDatabase.StateDirectory(configuration), "k8s-secret-key")));

    public string Seal(IReadOnlyDictionary<string, string> data, Guid objectId) =>
        Convert.ToBase64String(Aead.Seal(key, JsonSerializer.SerializeToUtf8Bytes(data), objectId.ToByteArray()));

    public Dictionary<string, string> Open(string sealedText, Guid objectId)
    {
        var bytes = Convert.FromBase64String(sealedText);
        byte[] plain;
        try
        {
            plain = Aead.Open(key, bytes, objectId.ToByteArray());
        }
        catch (CryptographicException) when (bytes.Length >= 28)
        {
            // Sealed before Aead (2026-12-06): nonce, tag, then the ciphertext. Put in Aead's order, it opens the same way.
            plain = Aead.Open(key, [.. bytes[..12], .. bytes[28..], .. bytes[12..28]], objectId.ToByteArray());
        }
        return JsonSerializer.Deserialize<Dictionary<string, string>>(plain) ?? [];
    }

    /// <summary>What an event may say about a value: a keyed hash, so that a change shows without the value being guessable from it.</summary>
    public string Fingerprint(string value, Guid objectId) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{objectId:N}\u001f{value}")))[..16];
}
