using Kraud.Api.Database;
using Npgsql;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// One throwaway PostgreSQL cluster per test run, started with the same launcher as Kraud's embedded default
/// (or the server named by KRAUD_TEST_DATABASE); every test collection gets a database of its own in it.
/// </summary>
public static class TestDatabase
{
    private static readonly Lazy<Task<string>> Server = new(StartServerAsync);
    private static EmbeddedPostgres? _embedded;
    private static string? _directory;

    public static async Task<string> CreateAsync(string prefix)
    {
        var server = await Server.Value;
        var name = $"{prefix}_{Guid.NewGuid():N}"[..30];
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"create database {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        return new NpgsqlConnectionStringBuilder(server) { Database = name, Pooling = true, MaxPoolSize = 60 }.ConnectionString;
    }

    /// <summary>Drops a database <see cref="CreateAsync"/> made (its connections closed first).</summary>
    public static async Task DropAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        await using var connection = new NpgsqlConnection(await Server.Value);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"drop database if exists {name} with (force)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<string> StartServerAsync()
    {
        if (Environment.GetEnvironmentVariable("KRAUD_TEST_DATABASE") is { Length: > 0 } external) return external;
        _directory = Path.Combine(Path.GetTempPath(), $"kraud-tests-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        _embedded = await EmbeddedPostgres.StartAsync(Path.Combine(_directory, "pg"), "kraud_tests", durable: false);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop();
        return _embedded.ConnectionString;
    }

    private static void Stop()
    {
        try
        {
            _embedded?.StopAsync().Wait(TimeSpan.FromSeconds(30));
            if (_directory is not null && Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or AggregateException)
        {
            // A leftover temp folder is not worth failing the run for.
        }
    }
}
