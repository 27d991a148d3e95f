namespace Kraud.Api.Idempotency;

/// <summary>
/// One Idempotency-Key of one tenant (or of the operator): which request body first used it, whether that request is
/// still running (and on whose lease), and once it finished, the answer every retry gets.
/// </summary>
public sealed class IdempotencyRecord
{
    /// <summary>Scope and the key's SHA-256: keys of different tenants never meet.</summary>
    public string Id { get; set; } = "";

    public string Scope { get; set; } = "";

    public string RequestSha256 { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>After this the key is forgotten and may name a new request.</summary>
    public DateTimeOffset ExpiresAt { get; set; }

    /// <summary>While unanswered: the attempt running it renews this; a retry may take over once it passed (its node died).</summary>
    public DateTimeOffset LeaseUntil { get; set; }

    public string Holder { get; set; } = "";

    public int? Status { get; set; }

    public string? ContentType { get; set; }

    /// <summary>The answer's bytes, sealed with a key derived from the Idempotency-Key (nonce, ciphertext, tag; base64).</summary>
    public string? Body { get; set; }

    public bool Answered => Status is not null;
}
