namespace Kraud.Projections.Fleet;

/// <summary>
/// The public key a host announced for secrets sealed to it (all hosts of a fleet announce the same one). The fleet
/// keeps it from the host's announcement; the images slice reads it to seal a pod's pull credential for the hosts.
/// </summary>
public sealed class HostSealingKey
{
    public Guid Id { get; set; }
    public string KeyId { get; set; } = "";
    public string PublicKey { get; set; } = "";
    public DateTimeOffset AnnouncedAt { get; set; }
}
