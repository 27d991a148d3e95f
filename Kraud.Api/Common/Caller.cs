using Kraud.Domain.Access;

namespace Kraud.Api.Common;

/// <summary>The authenticated principal of one request, where it came from, and the correlation id its work carries.</summary>
public sealed record Caller(Principal Principal, string? ClientAddress, string CorrelationId)
{
    /// <summary>Where the request's new resources get their ids (derived from its Idempotency-Key when it has one).</summary>
    public RequestIds Ids { get; init; } = new(null);
}
