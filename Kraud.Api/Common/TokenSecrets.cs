using System.Security.Cryptography;
using System.Text;

namespace Kraud.Api.Common;

public static class TokenSecrets
{
    /// <summary>256 random bits: a fast hash is enough to store it, since no dictionary can guess it.</summary>
    public static string New() => "krd_" + Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string Sha256(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
