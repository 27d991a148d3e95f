using System.Security.Cryptography;

namespace Kraud.Domain.Common;

/// <summary>
/// AES-256-GCM as Kraud seals its secrets: a fresh 96-bit nonce, then the ciphertext, then the 128-bit tag. The context
/// (what the secret belongs to) is authenticated, so a sealed secret copied to another owner does not open.
/// </summary>
public static class Aead
{
    private const int NonceSize = 12, TagSize = 16;

    public static byte[] Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> clear, ReadOnlySpan<byte> context)
    {
        var sealedBytes = new byte[NonceSize + clear.Length + TagSize];
        RandomNumberGenerator.Fill(sealedBytes.AsSpan(0, NonceSize));
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(sealedBytes.AsSpan(0, NonceSize), clear, sealedBytes.AsSpan(NonceSize, clear.Length), sealedBytes.AsSpan(NonceSize + clear.Length), context);
        return sealedBytes;
    }

    /// <exception cref="CryptographicException">Sealed under another key, for another context, truncated or altered.</exception>
    public static byte[] Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> context)
    {
        var length = sealedBytes.Length - NonceSize - TagSize;
        if (length < 0) throw new CryptographicException("the sealed secret is truncated");
        var clear = new byte[length];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(sealedBytes[..NonceSize], sealedBytes.Slice(NonceSize, length), sealedBytes[(NonceSize + length)..], clear, context);
        return clear;
    }

    /// <summary>A key's name that does not reveal it: a hash of a hash, so it is no oracle for the key itself.</summary>
    public static string KeyId(string prefix, ReadOnlySpan<byte> key) => prefix + Convert.ToHexStringLower(SHA256.HashData(SHA256.HashData(key)))[..16];
}
