using System.Security.Cryptography;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Storage;

/// <summary>
/// The fleet's key-encryption key: it wraps every volume's data key (envelope encryption), so the control plane can keep
/// data keys without being able to read them. Only host runtimes load it, from a file of their own (mode 0600, made at
/// first start); in a real datacenter a KMS or HSM would hand it to them. Every host runtime of a fleet needs the same
/// one, or a replica could not unwrap what another generated.
/// </summary>
public sealed class KeyEncryptionKey
{
    private const int NonceSize = 12, TagSize = 16;
    private readonly byte[] _key;

    private KeyEncryptionKey(byte[] key)
    {
        _key = key;
        // The id names the key without revealing it: a hash of a hash, so it is no oracle for the key itself.
        Id = "kek-" + Convert.ToHexStringLower(SHA256.HashData(SHA256.HashData(key)))[..16];
    }

    public string Id { get; }

    public static KeyEncryptionKey LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            var existing = Convert.FromBase64String(File.ReadAllText(path).Trim());
            if (existing.Length != 32) throw new InvalidOperationException($"{path} does not hold a 256-bit key-encryption key.");
            return new KeyEncryptionKey(existing);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var key = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using var file = new StreamWriter(new FileStream(path, options));
            file.Write(Convert.ToBase64String(key));
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another host runtime of this machine made it first: use theirs.
            return LoadOrCreate(path);
        }
        return new KeyEncryptionKey(key);
    }

    public WrappedKey Wrap(Guid keyId, ReadOnlySpan<byte> dataKey)
    {
        var sealedKey = new byte[NonceSize + dataKey.Length + TagSize];
        var nonce = sealedKey.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagSize);
        // The key id is authenticated too, so a wrapped key cannot be passed off as another volume's.
        aes.Encrypt(nonce, dataKey, sealedKey.AsSpan(NonceSize, dataKey.Length), sealedKey.AsSpan(NonceSize + dataKey.Length), keyId.ToByteArray());
        return new WrappedKey(keyId, Id, Convert.ToBase64String(sealedKey));
    }

    /// <exception cref="CryptographicException">The key was wrapped under another key-encryption key, or altered.</exception>
    public byte[] Unwrap(WrappedKey wrapped)
    {
        if (wrapped.KekId != Id)
            throw new CryptographicException($"data key {wrapped.KeyId} is wrapped under {wrapped.KekId}, and this host runtime holds {Id}");
        var sealedKey = Convert.FromBase64String(wrapped.Sealed);
        var length = sealedKey.Length - NonceSize - TagSize;
        if (length <= 0) throw new CryptographicException($"data key {wrapped.KeyId} is truncated");
        var dataKey = new byte[length];
        using var aes = new AesGcm(_key, TagSize);
        aes.Decrypt(sealedKey.AsSpan(0, NonceSize), sealedKey.AsSpan(NonceSize, length), sealedKey.AsSpan(NonceSize + length), dataKey,
            wrapped.KeyId.ToByteArray());
        return dataKey;
    }

    /// <summary>
    /// A key for another purpose, derived from this one (HKDF-SHA256 with the purpose as info): every host runtime of the
    /// fleet derives the same, and nothing derived reveals the key-encryption key.
    /// </summary>
    public byte[] Derive(string purpose, int length = 32) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, _key, length, salt: [], info: System.Text.Encoding.UTF8.GetBytes(purpose));

    /// <summary>For tests that must prove no response or export contains it.</summary>
    public byte[] ExportForTests() => _key.ToArray();
}
