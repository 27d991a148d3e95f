using System.Diagnostics;
using System.Globalization;
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
        SweepLeftovers();
        _directory = Path.Combine(Path.GetTempPath(), $"kraud-tests-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        _embedded = await EmbeddedPostgres.StartAsync(Path.Combine(_directory, "pg"), "kraud_tests", durable: false);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop();
        WatchOwner(_directory, _embedded.DataDirectory);
        return _embedded.ConnectionString;
    }

    /// <summary>
    /// The test platform gives its testhost a moment to exit and then kills it, often while <see cref="Stop"/> runs (ci66
    /// left the stopped cluster's 512 MB behind), and a killed run never gets there at all. A detached shell therefore
    /// outlives this process: once it is gone, it stops the server if it still runs (SIGQUIT, PostgreSQL's immediate
    /// shutdown: the data is thrown away anyway) and deletes the directory.
    /// </summary>
    private static void WatchOwner(string directory, string dataDirectory)
    {
        const string script = """
            exec </dev/null >/dev/null 2>&1
            while kill -0 "$1"; do sleep 1; done
            pid=$(head -n 1 "$3/postmaster.pid")
            # Only the server of this directory: a stale pid file's number may belong to another process by now.
            if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd")" = "$3" ]; then
              kill -QUIT "$pid"
              for _ in $(seq 100); do kill -0 "$pid" || break; sleep 0.1; done
            fi
            rm -rf "$2"
            """;
        var start = new ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            // Not the testhost's own pipes: the test platform reads them to their end.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList = { "sh", "-c", script, "kraud-tests-watch", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), directory, dataDirectory },
        };
        using var watcher = Process.Start(start);
    }

    /// <summary>
    /// Removes the clusters of earlier runs whose test process is gone: ProcessExit does not run when the test platform
    /// kills its testhost (a timeout, a cancelled run). A cluster whose postgres still runs is left alone.
    /// </summary>
    private static void SweepLeftovers()
    {
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), "kraud-tests-*"))
        {
            var owner = Path.GetFileName(directory).Split('-') is [_, _, var pid, ..] && int.TryParse(pid, CultureInfo.InvariantCulture, out var p) ? p : 0;
            if (owner == 0 || owner == Environment.ProcessId || Directory.Exists($"/proc/{owner}")) continue;
            var postmaster = Path.Combine(directory, "pg", "postmaster.pid");
            if (File.Exists(postmaster) && int.TryParse(File.ReadLines(postmaster).FirstOrDefault(), CultureInfo.InvariantCulture, out var server) && Directory.Exists($"/proc/{server}"))
                continue;
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Someone else's, or in use: not ours to force.
            }
        }
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
