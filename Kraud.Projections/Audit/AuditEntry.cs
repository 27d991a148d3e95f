using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Kraud.Projections.Audit;

/// <summary>One link of the platform's audit chain: a command someone gave, or an event it caused.</summary>
public class AuditEntry
{
    /// <summary>Position in the chain (1-based, no gaps); also the document id.</summary>
    public long Id { get; set; }
    public long EventSeq { get; set; }
    public DateTimeOffset At { get; set; }
    public Guid? TenantId { get; set; }
    public string Actor { get; set; } = "";
    public string Action { get; set; } = "";
    public Guid? ResourceId { get; set; }
    public string Outcome { get; set; } = "";
    public string? CorrelationId { get; set; }
    public string? CausationId { get; set; }
    public string Hash { get; set; } = "";
    public string PreviousHash { get; set; } = "";

    public const string Genesis = "0000000000000000000000000000000000000000000000000000000000000000";

    /// <summary>
    /// SHA-256 over a fixed, culture-free rendering of every field and the previous hash: any edit of a row, or a row
    /// moved, removed or inserted, breaks every hash after it.
    /// </summary>
    public string ComputeHash()
    {
        var canonical = string.Join('\n',
            Id.ToString(CultureInfo.InvariantCulture),
            EventSeq.ToString(CultureInfo.InvariantCulture),
            At.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
            TenantId?.ToString() ?? "",
            Actor, Action,
            ResourceId?.ToString() ?? "",
            Outcome,
            CorrelationId ?? "",
            CausationId ?? "",
            PreviousHash);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }
}

/// <summary>The end of the chain, so the next batch knows what to link to.</summary>
public sealed class AuditChainHead
{
    public string Id { get; set; } = PlatformChain;
    public long LastEntry { get; set; }
    public long LastEventSeq { get; set; }
    public string Hash { get; set; } = AuditEntry.Genesis;

    /// <summary>Commands already given their own entry; their events can interleave with other transactions' events.</summary>
    public List<string> RecentCommands { get; set; } = [];

    public const string PlatformChain = "platform";
}

/// <summary>
/// A command the platform refused (bad input, no right, a stale version…). Refusals append no event, so they cannot be
/// links of the event-projected chain: they form a chain of their own, hashed the same way.
/// </summary>
public sealed class RejectedCommandEntry : AuditEntry;

public sealed class RejectionChainHead
{
    public string Id { get; set; } = Chain;
    public long LastEntry { get; set; }
    public string Hash { get; set; } = AuditEntry.Genesis;

    public const string Chain = "rejections";
}
