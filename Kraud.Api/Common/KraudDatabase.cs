namespace Kraud.Api.Common;

/// <summary>The database Kraud runs on: an external PostgreSQL, or the embedded one it started itself.</summary>
public sealed record KraudDatabase(string ConnectionString, bool Embedded, string Description)
{
    /// <summary>The schema of Marten's tables (events, streams, documents, projection progress).</summary>
    public const string Schema = "kraud";

    /// <summary>Where Kraud keeps local state (.kraud beside where it runs, unless Kraud:StateDirectory says otherwise).</summary>
    public static string StateDirectory(IConfiguration configuration) =>
        Path.GetFullPath(configuration["Kraud:StateDirectory"] ?? ".kraud");
}
