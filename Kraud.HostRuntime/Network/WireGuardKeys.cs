using NSec.Cryptography;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The host's X25519 key pair for WireGuard, made inside the host runtime when it starts and held in its memory only:
/// the public half is announced to the control plane, the private half goes into nothing but the rendered interface
/// configuration of this host. A restarted runtime makes a new pair and announces it (peers then learn the new key).
/// </summary>
public sealed class WireGuardKeys : IDisposable
{
    private readonly Key _key;

    public WireGuardKeys()
    {
        _key = Key.Create(KeyAgreementAlgorithm.X25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        PublicKey = Convert.ToBase64String(_key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>Base64 of the 32-byte public key, the form <c>wg</c> and wg-quick use.</summary>
    public string PublicKey { get; }

    /// <summary>
    /// Base64 of the 32-byte private key, for the interface configuration on this host only. Nothing sends it anywhere;
    /// the key specs read it to check it against <c>wg pubkey</c> and to prove that no API answer or stored row holds it.
    /// </summary>
    public string PrivateKey() => Convert.ToBase64String(_key.Export(KeyBlobFormat.RawPrivateKey));

    public void Dispose() => _key.Dispose();
}
