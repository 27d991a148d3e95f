using System.Security.Cryptography;
using System.Text;
using Kraud.Api.Configuration;

namespace Kraud.Api.Images;

/// <summary>
/// The control plane's own key for tenants' registry passwords (AES-256-GCM): the control plane needs them in clear to
/// resolve images at createPod, so it keeps them sealed under a key outside the database, in the state directory (mode
/// 0600) or Images:CredentialKeyFile, which several API nodes must share. Host runtimes never get this key: a password
/// travels to them sealed to the fleet's sealing key (see <see cref="RegistryCredentials"/>).
/// </summary>
public sealed class RegistryCredentialKey
{
    public const string DefaultFile = "registry-credential.key";
    private const int NonceSize = 12, TagSize = 16;
    private readonly byte[] _key;

    private RegistryCredentialKey(byte[] key)
    {
        _key = key;
        Id = "rck-" + Convert.ToHexStringLower(SHA256.HashData(SHA256.HashData(key)))[..16];
    }

    public string Id { get; }

    public static RegistryCredentialKey Load(IConfiguration configuration)
    {
        var path = configuration["Images:CredentialKeyFile"] ?? Path.Combine(Common.KraudDatabase.StateDirectory(configuration), DefaultFile);
        if (File.Exists(path))
        {
            var existing = Convert.FromBase64String(File.ReadAllText(path).Trim());
            return existing.Length == 32 ? new RegistryCredentialKey(existing) : throw new InvalidOperationException($"{path} does not hold a 256-bit key.");
        }
        var key = RandomNumberGenerator.GetBytes(32);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using var file = new StreamWriter(new FileStream(path, options));
            file.Write(Convert.ToBase64String(key));
        }
        catch (IOException) when (File.Exists(path))
        {
            return Load(configuration); // another node made it first
        }
        return new RegistryCredentialKey(key);
    }

    /// <summary>Sealed with what it belongs to as associated data: a sealed password moved to another credential does not open.</summary>
    public string Seal(string secret, string context)
    {
        var clear = Encoding.UTF8.GetBytes(secret);
        try
        {
            var sealedBytes = new byte[NonceSize + clear.Length + TagSize];
            RandomNumberGenerator.Fill(sealedBytes.AsSpan(0, NonceSize));
            using var aes = new AesGcm(_key, TagSize);
            aes.Encrypt(sealedBytes.AsSpan(0, NonceSize), clear, sealedBytes.AsSpan(NonceSize, clear.Length), sealedBytes.AsSpan(NonceSize + clear.Length),
                Encoding.UTF8.GetBytes(context));
            return Convert.ToBase64String(sealedBytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clear);
        }
    }

    /// <exception cref="CryptographicException">Sealed under another key, for another context, or altered.</exception>
    public string Open(string sealedSecret, string context)
    {
        var sealedBytes = Convert.FromBase64String(sealedSecret);
        var length = sealedBytes.Length - NonceSize - TagSize;
        if (length < 0) throw new CryptographicException("the sealed secret is truncated");
        var clear = new byte[length];
        try
        {
            using var aes = new AesGcm(_key, TagSize);
            aes.Decrypt(sealedBytes.AsSpan(0, NonceSize), sealedBytes.AsSpan(NonceSize, length), sealedBytes.AsSpan(NonceSize + length), clear,
                Encoding.UTF8.GetBytes(context));
            return Encoding.UTF8.GetString(clear);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clear);
        }
    }
}
