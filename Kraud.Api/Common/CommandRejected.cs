namespace Kraud.Api.Common;

/// <summary>A refused command, on its way into the rejection chain (a sequential local queue, so links never race).</summary>
public sealed record CommandRejected(DateTimeOffset At, Guid? TenantId, string Actor, string Command, string Code, string Reason, string? CorrelationId);

/// <summary>A request that wraps a domain command with the caller's context: a refusal is audited under the command's name.</summary>
public interface ICommandRequest
{
    object Command { get; }
}

/// <summary>
/// A document whose id is a contended resource (an address, an ingress slot): of two transactions that insert the same
/// one, the loser is retried on fresh state and takes the next free one.
/// </summary>
public interface IContendedClaim;
