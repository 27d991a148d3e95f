namespace Kraud.Domain.Common;

/// <summary>The error codes of the public contract (extensions.code).</summary>
public enum ErrorCode
{
    Unauthenticated,
    Forbidden,
    NotFound,
    Validation,
    Conflict,
    Unschedulable,
    Precondition,

    /// <summary>A read before the boundary of events removed from the log: the answer is in an archive, which the message names.</summary>
    ArchiveRequired,
}

/// <summary>
/// A command was refused. Deciders throw it before any event exists, so a refusal never appends anything.
/// </summary>
public sealed class DomainException(ErrorCode code, string message) : Exception(message)
{
    public ErrorCode Code { get; } = code;

    public string ContractCode => Code switch
    {
        ErrorCode.Unauthenticated => "UNAUTHENTICATED",
        ErrorCode.Forbidden => "FORBIDDEN",
        ErrorCode.NotFound => "NOT_FOUND",
        ErrorCode.Validation => "VALIDATION",
        ErrorCode.Conflict => "CONFLICT",
        ErrorCode.Unschedulable => "UNSCHEDULABLE",
        ErrorCode.Precondition => "PRECONDITION",
        ErrorCode.ArchiveRequired => "ARCHIVE_REQUIRED",
        _ => throw new InvalidOperationException($"{Code} has no contract code."),
    };

    public static DomainException Validation(string message) => new(ErrorCode.Validation, message);
    public static DomainException NotFound(string what, object id) => new(ErrorCode.NotFound, $"{what} '{id}' does not exist or is not visible to you.");
    public static DomainException Conflict(string message) => new(ErrorCode.Conflict, message);
    public static DomainException Forbidden(string message) => new(ErrorCode.Forbidden, message);
}
