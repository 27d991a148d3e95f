using System.Text.RegularExpressions;
using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.Compliance;

/// <summary>Someone entered a datacenter: who, when, why, and the SHA-256 of the camera snapshot that shows it.</summary>
public sealed record DatacenterAccessRecorded(Guid AccessId, string Person, DateTimeOffset At, string Datacenter, string Reason, string CameraSnapshotSha256,
    string RecordedBy, DateTimeOffset RecordedAt);

public sealed record RecordDatacenterAccess(Guid AccessId, string Person, DateTimeOffset At, string Datacenter, string Reason, string CameraSnapshotSha256,
    IReadOnlyCollection<string> KnownDatacenters, Principal By, DateTimeOffset Now);

public static partial class DatacenterAccessDecider
{
    [GeneratedRegex("^[0-9a-f]{64}$", RegexOptions.None, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Sha256Hex();

    /// <summary>A small clock skew is tolerated; an entry in the future is a mistake.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    public static IReadOnlyList<object> Decide(RecordDatacenterAccess c)
    {
        if (c.By.Role != Role.Operator) throw DomainException.Forbidden("Only an operator records physical access to a datacenter.");
        Names.RequireText(c.Person, "person", 200);
        Names.RequireText(c.Reason, "reason", 1000);
        if (!c.KnownDatacenters.Contains(c.Datacenter))
            throw DomainException.Validation($"datacenter '{c.Datacenter}' is not one of the platform's: {string.Join(", ", c.KnownDatacenters)}.");
        if (!Sha256Hex().IsMatch(c.CameraSnapshotSha256))
            throw DomainException.Validation("cameraSnapshotSha256 must be the 64 lowercase hex digits of the snapshot's SHA-256.");
        if (c.At > c.Now + ClockSkew) throw DomainException.Validation($"at {c.At:O} is in the future.");
        return [new DatacenterAccessRecorded(c.AccessId, c.Person.Trim(), c.At, c.Datacenter, c.Reason.Trim(), c.CameraSnapshotSha256, c.By.Actor, c.Now)];
    }
}
