namespace Kraud.Cli.Infrastructure;

/// <summary>An error the API answered with: its contract code (NOT_FOUND, VALIDATION, …) and its message.</summary>
public sealed class KraudApiException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}

/// <summary>Something the user must change before the CLI can go on (no context, a file that does not parse, …).</summary>
public sealed class CliException(string message, int exitCode = 2) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
