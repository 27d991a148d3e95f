using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Unicode;

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
    /// The columns Marten duplicates out of the document (TenantId, At, ResourceId; MartenSetup), which the chain's own
    /// writers fill beside the JSON.
    /// </summary>
    public const string Columns = "tenant_id, at, resource_id";

    /// <summary>
    /// SHA-256 over a fixed, culture-free rendering of every field and the previous hash: any edit of a row, or a row
    /// moved, removed or inserted, breaks every hash after it. The rendering is the fields' invariant text joined by
    /// '\n' (null as empty, the time as yyyy-MM-ddTHH:mm:ss.ffffffZ in UTC), UTF-8 encoded.
    /// </summary>
    public string ComputeHash()
    {
        // Written straight into UTF-8 bytes, without the eleven strings and the joined one the plain rendering makes: the
        // chain rebuild hashes millions of entries on one thread (AuditHashSpecs compares it with string.Join).
        var longest = Encoding.UTF8.GetMaxByteCount(Actor.Length + Action.Length + Outcome.Length + (CorrelationId?.Length ?? 0) +
                                                    (CausationId?.Length ?? 0) + PreviousHash.Length) + 160;
        byte[]? rented = null;
        var buffer = longest <= 1024 ? stackalloc byte[1024] : (rented = ArrayPool<byte>.Shared.Rent(longest));
        try
        {
            if (!Utf8.TryWrite(buffer, CultureInfo.InvariantCulture,
                    $"{Id}\n{EventSeq}\n{At.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'}\n{TenantId}\n{Actor}\n{Action}\n{ResourceId}\n{Outcome}\n{CorrelationId}\n{CausationId}\n{PreviousHash}",
                    out var written))
                throw new InvalidOperationException($"Audit entry {Id} did not fit its {buffer.Length}-byte rendering buffer.");
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(buffer[..written], hash);
            return Convert.ToHexStringLower(hash);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
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
