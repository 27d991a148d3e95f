using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Kraud.Domain.Ingresses;

/// <summary>
/// Passwords of BASIC ingress users, kept only as PBKDF2-SHA256: "pbkdf2-sha256$&lt;iterations&gt;$&lt;salt&gt;$&lt;hash&gt;" (base64).
/// The control plane hashes (the salt comes in from the caller), ingress proxies verify.
/// </summary>
public static class PasswordHash
{
    public const int Iterations = 100_000;

    public static string Of(string password, byte[] salt, int iterations = Iterations) =>
        $"pbkdf2-sha256${iterations.ToString(CultureInfo.InvariantCulture)}${Convert.ToBase64String(salt)}$" +
        Convert.ToBase64String(Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, 32));

    public static bool Verify(string password, string stored)
    {
        var parts = stored.Split('$');
        if (parts.Length != 4 || parts[0] != "pbkdf2-sha256" || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var iterations)) return false;
        var expected = Convert.FromBase64String(parts[3]);
        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), Convert.FromBase64String(parts[2]), iterations, HashAlgorithmName.SHA256,
            expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }
}
