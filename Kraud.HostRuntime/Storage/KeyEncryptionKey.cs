using System.Security.Cryptography;
using Kraud.Domain.Common;
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
    private readonly byte[] _key;

    private KeyEncryptionKey(byte[] key)
    {
        _key = key;
        Id = Aead.KeyId("kek-", key);
    }

    public string Id { get; }

    public static KeyEncryptionKey LoadOrCreate(string path) => new(KeyFile.LoadOrCreate(path));

    /// <summary>The key id is authenticated too, so a wrapped key cannot be passed off as another volume's.</summary>
    public WrappedKey Wrap(Guid keyId, ReadOnlySpan<byte> dataKey) => new(keyId, Id, Convert.ToBase64String(Aead.Seal(_key, dataKey, keyId.ToByteArray())));

    /// <exception cref="CryptographicException">The key was wrapped under another key-encryption key, or altered.</exception>
    public byte[] Unwrap(WrappedKey wrapped)
    {
        if (wrapped.KekId != Id)
            throw new CryptographicException($"data key {wrapped.KeyId} is wrapped under {wrapped.KekId}, and this host runtime holds {Id}");
        return Aead.Open(_key, Convert.FromBase64String(wrapped.Sealed), wrapped.KeyId.ToByteArray());
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
