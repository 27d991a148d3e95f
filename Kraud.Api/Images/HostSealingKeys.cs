using Kraud.Domain.HostProtocol;
using Marten;

namespace Kraud.Api.Images;

/// <summary>A host runtime's announcement carries the public key secrets are sealed to for it; the control plane keeps the latest.</summary>
public static class HostSealingKeyHandler
{
    public static void Handle(HostAnnounced announced, IDocumentSession session, TimeProvider time)
    {
        if (announced.SealingKey is not { } key) return;
        session.Store(new HostSealingKey { Id = announced.HostId, KeyId = key.KeyId, PublicKey = key.PublicKey, AnnouncedAt = time.GetUtcNow() });
    }
}
