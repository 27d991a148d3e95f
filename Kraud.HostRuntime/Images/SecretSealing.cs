using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Storage;
using NSec.Cryptography;

namespace Kraud.HostRuntime.Images;

/// <summary>
/// Seals small secrets (registry passwords) for the fleet's host runtimes: an ephemeral X25519 key agreed with the
/// recipient's public key, HKDF-SHA256 over the shared secret, AES-256-GCM with the context (what the secret is for) as
/// associated data, so a sealed secret cannot be passed off as another one. The control plane seals with the public key a
/// host announced; only a holder of the fleet's key-encryption key can open it (<see cref="SealingKeyPair"/>). A sealed
/// secret may travel in a queue message: the clear text never does.
/// </summary>
public static class SecretSealing
{
    private static readonly KeyAgreementAlgorithm X25519 = KeyAgreementAlgorithm.X25519;
    private const int NonceSize = 12, TagSize = 16;

    public static SealedSecret Seal(SealingKey recipient, ReadOnlySpan<byte> secret, string context)
    {
        var recipientPublic = Convert.FromBase64String(recipient.PublicKey);
        var recipientKey = PublicKey.Import(X25519, recipientPublic, KeyBlobFormat.RawPublicKey);
        using var ephemeral = Key.Create(X25519);
        var ephemeralPublic = ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var key = DeriveKey(ephemeral, recipientKey, ephemeralPublic, recipientPublic);
        try
        {
            var nonce = RandomNumberGenerator.GetBytes(NonceSize);
            var ciphertext = new byte[secret.Length + TagSize];
            using var aes = new AesGcm(key, TagSize);
            aes.Encrypt(nonce, secret, ciphertext.AsSpan(0, secret.Length), ciphertext.AsSpan(secret.Length), Encoding.UTF8.GetBytes(context));
            return new SealedSecret(recipient.KeyId, Convert.ToBase64String(ephemeralPublic), Convert.ToBase64String(nonce), Convert.ToBase64String(ciphertext));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <exception cref="CryptographicException">Sealed for another key, for another context, or altered.</exception>
    public static byte[] Open(SealingKeyPair keys, SealedSecret sealedSecret, string context)
    {
        if (sealedSecret.RecipientKeyId != keys.Public.KeyId)
            throw new CryptographicException($"the secret is sealed for {sealedSecret.RecipientKeyId}, and this host runtime holds {keys.Public.KeyId}");
        var ephemeralPublic = Convert.FromBase64String(sealedSecret.EphemeralPublicKey);
        var key = DeriveKey(keys.Private, PublicKey.Import(X25519, ephemeralPublic, KeyBlobFormat.RawPublicKey), ephemeralPublic,
            keys.Private.PublicKey.Export(KeyBlobFormat.RawPublicKey));
        try
        {
            var ciphertext = Convert.FromBase64String(sealedSecret.Ciphertext);
            if (ciphertext.Length < TagSize) throw new CryptographicException("the sealed secret is truncated");
            var clear = new byte[ciphertext.Length - TagSize];
            using var aes = new AesGcm(key, TagSize);
            aes.Decrypt(Convert.FromBase64String(sealedSecret.Nonce), ciphertext.AsSpan(0, clear.Length), ciphertext.AsSpan(clear.Length), clear,
                Encoding.UTF8.GetBytes(context));
            return clear;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static byte[] DeriveKey(Key own, PublicKey other, byte[] ephemeralPublic, byte[] recipientPublic)
    {
        using var shared = X25519.Agree(own, other) ?? throw new CryptographicException("the public key is not usable (a low-order point)");
        // Both public keys go into the derivation, as in HPKE: the key belongs to this one exchange.
        var salt = ephemeralPublic.Concat(recipientPublic).ToArray();
        return KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, salt, "kraud sealed secret v1"u8, 32);
    }

    /// <summary>What a sealed registry password is bound to: a password sealed for one tenant and registry opens for no other.</summary>
    public static string RegistryCredentialContext(Guid tenant, string registry) => $"kraud registry credential\n{tenant}\n{registry}";

    public static string KeyIdOf(ReadOnlySpan<byte> publicKey) => "seal-" + Convert.ToHexStringLower(SHA256.HashData(publicKey))[..16];
}

/// <summary>
/// The fleet's sealing key pair, derived from the key-encryption key: every host runtime of a fleet opens what was sealed
/// for any of them (a boot command may wait in a queue across a restart of the runtime), and the private half never leaves
/// this process.
/// </summary>
public sealed class SealingKeyPair : IDisposable
{
    internal Key Private { get; }
    public SealingKey Public { get; }

    private SealingKeyPair(byte[] privateKey)
    {
        try
        {
            Private = Key.Import(KeyAgreementAlgorithm.X25519, privateKey, KeyBlobFormat.RawPrivateKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(privateKey);
        }
        var publicKey = Private.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Public = new SealingKey(SecretSealing.KeyIdOf(publicKey), Convert.ToBase64String(publicKey));
    }

    public static SealingKeyPair From(KeyEncryptionKey kek) => new(kek.Derive("kraud registry credential sealing key v1"));

    public void Dispose() => Private.Dispose();
}
