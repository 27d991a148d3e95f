using System.Security.Cryptography;
using System.Text;
using Kraud.Api.Common;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Images;
using Kraud.Projections.Fleet;
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

/// <summary>
/// Where registry credentials are opened (to resolve an image) and sealed again for host runtimes (to pull it). It
/// remembers what it last read of each tenant's credential for a registry, none included: createPod resolves its image
/// with that without a read (a commit) of its own before its transaction, and confirms it inside the transaction
/// (<see cref="PodImages.ConfirmAsync"/>), where a credential added, replaced or removed since, on any node, is read and the
/// image resolved again with it. So no node has to tell the others, and a stale memory costs a second resolution, never
/// a pod created with a credential that is gone.
/// </summary>
public sealed class RegistryCredentials(RegistryCredentialKey key)
{
    /// <summary>At most this many remembered, then forgotten all at once (a tenant's next create reads its own again).</summary>
    private const int Remembered = 10_000;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(Guid Tenant, string Registry), RegistryCredentialSecret?> known = new();

    public RegistryCredentialKey Key => key;

    /// <summary>The tenant's credential for this registry as this node last read it; false when it has not read it yet.</summary>
    public bool TryRecall(Guid tenant, string registry, out RegistryCredentialSecret? secret) => known.TryGetValue((tenant, registry), out secret);

    /// <summary>The tenant's credential for this registry as the session reads it now (null: none), remembered.</summary>
    public async Task<RegistryCredentialSecret?> ReadAsync(IQuerySession session, Guid tenant, string registry, CancellationToken ct)
    {
        if (!ReadAhead.TryTake<RegistryCredentialSecret?>(session, (tenant, registry), out var secret))
            secret = await session.Query<RegistryCredentialSecret>().Where(Of(tenant, registry)).FirstOrDefaultAsync(ct);
        if (known.Count >= Remembered) known.Clear();
        known[(tenant, registry)] = secret;
        return secret;
    }

    /// <summary>The session's next <see cref="ReadAsync"/> of this credential answers from the read-ahead's round trip.</summary>
    public static void ReadAheadForConfirm(ReadAhead ahead, Guid tenant, string registry) =>
        ahead.Read<RegistryCredentialSecret?>((tenant, registry),
            batch => batch.Query<RegistryCredentialSecret>().Where(Of(tenant, registry)).FirstOrDefault());

    /// <summary>The tenant's credential for the registry, as both reads (alone and read ahead) ask for it.</summary>
    private static System.Linq.Expressions.Expression<Func<RegistryCredentialSecret, bool>> Of(Guid tenant, string registry) =>
        s => s.TenantId == tenant && s.Registry == registry;

    /// <summary>Whether two reads found the same credential (or none both times).</summary>
    public static bool Same(RegistryCredentialSecret? a, RegistryCredentialSecret? b) =>
        a?.Id == b?.Id && a?.Username == b?.Username && a?.SealedPassword == b?.SealedPassword;

    /// <summary>The login in clear for this one request; null for no credential.</summary>
    public RegistryAuth? Open(RegistryCredentialSecret? secret, string registry)
    {
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
