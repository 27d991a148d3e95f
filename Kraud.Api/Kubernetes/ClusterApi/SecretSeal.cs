using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kraud.Api.Common;

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

    public static SecretSeal Load(IConfiguration configuration)
    {
        var path = configuration["Kubernetes:SecretKeyFile"] ?? Path.Combine(KraudDatabase.StateDirectory(configuration), "k8s-secret-key");
        if (File.Exists(path)) return new SecretSeal(Convert.FromBase64String(File.ReadAllText(path).Trim()));
        var fresh = RandomNumberGenerator.GetBytes(32);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = path + ".new";
        File.WriteAllText(temporary, Convert.ToBase64String(fresh) + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        try
        {
            File.Move(temporary, path, overwrite: false);
        }
        catch (IOException)
        {
            // Another process of the same state directory made one first: use that.
            File.Delete(temporary);
            return new SecretSeal(Convert.FromBase64String(File.ReadAllText(path).Trim()));
        }
        return new SecretSeal(fresh);
    }

    public string Seal(IReadOnlyDictionary<string, string> data, Guid objectId)
    {
        var plain = JsonSerializer.SerializeToUtf8Bytes(data);
        var nonce = RandomNumberGenerator.GetBytes(12);
        var cipher = new byte[plain.Length];
        var tag = new byte[16];
        using var aes = new AesGcm(key, 16);
        aes.Encrypt(nonce, plain, cipher, tag, objectId.ToByteArray());
        return Convert.ToBase64String([.. nonce, .. tag, .. cipher]);
    }

    public Dictionary<string, string> Open(string sealedText, Guid objectId)
    {
        var bytes = Convert.FromBase64String(sealedText);
        var plain = new byte[bytes.Length - 28];
        using var aes = new AesGcm(key, 16);
        aes.Decrypt(bytes.AsSpan(0, 12), bytes.AsSpan(28), bytes.AsSpan(12, 16), plain, objectId.ToByteArray());
        return JsonSerializer.Deserialize<Dictionary<string, string>>(plain) ?? [];
    }

    /// <summary>What an event may say about a value: a keyed hash, so that a change shows without the value being guessable from it.</summary>
    public string Fingerprint(string value, Guid objectId) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{objectId:N}\u001f{value}")))[..16];
}
