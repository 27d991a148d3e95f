using JasperFx.Events;
using Kraud.Domain.Images;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Images;

/// <summary>A tenant's registry credential as registryCredentials lists it: registry and user, never the secret.</summary>
public sealed class RegistryCredentialView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public string Registry { get; set; } = "";
    public string Username { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}

public sealed class RegistryCredentialViewProjection : SingleStreamProjection<RegistryCredentialView, Guid>
{
    public override RegistryCredentialView? Evolve(RegistryCredentialView? snapshot, Guid id, IEvent e) => e.Data switch
    {
        RegistryCredentialAdded a => new RegistryCredentialView { Id = a.CredentialId, TenantId = a.TenantId, Registry = a.Registry, Username = a.Username, CreatedAt = a.At },
        // Gone from the list at once; its events stay in the log (the audit chain tells who added and removed it).
        RegistryCredentialRemoved => null,
        _ => snapshot,
    };
}
