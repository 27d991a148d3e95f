using System.Security.Cryptography;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Images;
using Marten;

namespace Kraud.Api.Images;

/// <summary>
/// A registry credential's password, sealed under the control plane's <see cref="RegistryCredentialKey"/>. A document,
/// never an event (events are exported; a removed credential's document is deleted). Its id is the credential's.
/// </summary>
public sealed class RegistryCredentialSecret
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public string Registry { get; set; } = "";
    public string Username { get; set; } = "";
    public string KeyId { get; set; } = "";
    public string SealedPassword { get; set; } = "";

    public static string Context(Guid id, Guid tenant, string registry) => $"registry-credential/{id}/{tenant}/{registry}";
}

/// <summary>
/// The pull credential of one pod, sealed to the fleet's sealing key when the pod was created: the host runtimes that boot
/// its microVMs open it, nobody else can. A document beside the pod, deleted with it; the boot command carries it.
/// </summary>
public sealed class PodPullSecret
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public SealedRegistryCredential Credential { get; set; } = null!;
}

/// <summary>The public key a host announced for secrets sealed to it (all hosts of a fleet announce the same one).</summary>
public sealed class HostSealingKey
{
    public Guid Id { get; set; }
    public string KeyId { get; set; } = "";
    public string PublicKey { get; set; } = "";
    public DateTimeOffset AnnouncedAt { get; set; }
}

/// <summary>Where registry credentials are opened (to resolve an image) and sealed again for host runtimes (to pull it).</summary>
public sealed class RegistryCredentials(RegistryCredentialKey key)
{
    public RegistryCredentialKey Key => key;

    /// <summary>The tenant's login for this registry, in clear for this one request; null when it has none.</summary>
    public async Task<RegistryAuth?> AuthForAsync(IQuerySession session, Guid tenant, string registry, CancellationToken ct)
    {
        var secret = await session.Query<RegistryCredentialSecret>().Where(s => s.TenantId == tenant && s.Registry == registry).FirstOrDefaultAsync(ct);
        if (secret is null) return null;
        try
        {
            return new RegistryAuth(secret.Username, key.Open(secret.SealedPassword, RegistryCredentialSecret.Context(secret.Id, secret.TenantId, secret.Registry)));
        }
        catch (CryptographicException e)
        {
            throw new Kraud.Domain.Common.DomainException(Kraud.Domain.Common.ErrorCode.Precondition,
                $"the credential for {registry} cannot be opened with this control plane's key {key.Id} ({e.Message}): add it again");
        }
    }

    /// <summary>
    /// The credential sealed for the fleet's host runtimes, with the key a host announced last (every host runtime of a fleet
    /// derives the same from the key-encryption key). Null when no host has announced one yet.
    /// </summary>
    public static async Task<SealedRegistryCredential?> SealForHostsAsync(IQuerySession session, Guid tenant, string registry, RegistryAuth auth,
        CancellationToken ct)
    {
        var recipient = await session.Query<HostSealingKey>().OrderByDescending(k => k.AnnouncedAt).FirstOrDefaultAsync(ct);
        if (recipient is null) return null;
        var password = Encoding.UTF8.GetBytes(auth.Password);
        try
        {
            return new SealedRegistryCredential(registry, auth.Username,
                SecretSealing.Seal(new SealingKey(recipient.KeyId, recipient.PublicKey), password, SecretSealing.RegistryCredentialContext(tenant, registry)));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(password);
        }
    }
}
