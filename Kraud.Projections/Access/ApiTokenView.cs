using JasperFx.Events;
using Kraud.Domain.Access;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Access;

/// <summary>What authentication looks up: the SHA-256 of the secret, never the secret itself.</summary>
public sealed class ApiTokenView
{
    public Guid Id { get; set; }
    public Guid? TenantId { get; set; }
    public Role Role { get; set; }
    public string Name { get; set; } = "";
    public string SecretSha256 { get; set; } = "";
    public bool Revoked { get; set; }
    public DateTimeOffset IssuedAt { get; set; }
}

public sealed class ApiTokenViewProjection : SingleStreamProjection<ApiTokenView, Guid>
{
    public override ApiTokenView? Evolve(ApiTokenView? snapshot, Guid id, IEvent e) => e.Data switch
    {
        ApiTokenIssued i => new ApiTokenView
        {
            Id = i.TokenId, TenantId = i.TenantId, Role = i.Role, Name = i.Name, SecretSha256 = i.SecretSha256, IssuedAt = i.At,
        },
        ApiTokenRevoked when snapshot is not null => snapshot.Revoked ? snapshot : Revoke(snapshot),
        _ => snapshot,
    };

    private static ApiTokenView Revoke(ApiTokenView v)
    {
        v.Revoked = true;
        return v;
    }
}
