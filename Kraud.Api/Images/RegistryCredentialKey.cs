using System.Security.Cryptography;
using System.Text;
using Kraud.Api.Configuration;
using Kraud.Domain.Common;
using Kraud.HostRuntime.Storage;

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
    private readonly byte[] _key;

    private RegistryCredentialKey(byte[] key)
    {
        _key = key;
        Id = Aead.KeyId("rck-", key);
    }

    public string Id { get; }

    public static RegistryCredentialKey Load(IConfiguration configuration) => new(KeyFile.LoadOrCreate(
        configuration["Images:CredentialKeyFile"] ?? Path.Combine(Common.KraudDatabase.StateDirectory(configuration), DefaultFile)));

    /// <summary>Sealed with what it belongs to as associated data: a sealed password moved to another credential does not open.</summary>
    public string Seal(string secret, string context)
    {
        var clear = Encoding.UTF8.GetBytes(secret);
        try
        {
            return Convert.ToBase64String(Aead.Seal(_key, clear, Encoding.UTF8.GetBytes(context)));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clear);
        }
    }

    /// <exception cref="CryptographicException">Sealed under another key, for another context, or altered.</exception>
    public string Open(string sealedSecret, string context)
    {
        var clear = Aead.Open(_key, Convert.FromBase64String(sealedSecret), Encoding.UTF8.GetBytes(context));
        try
        {
            return Encoding.UTF8.GetString(clear);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clear);
        }
    }
}
