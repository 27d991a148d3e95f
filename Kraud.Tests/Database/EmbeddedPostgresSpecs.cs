using System.Diagnostics;
using System.Text.Json;
using Alba;
using Kraud.Api.Database;
using Kraud.Tests.Infrastructure;
using Npgsql;

namespace Kraud.Tests.Database;

/// <summary>The launcher behind `dotnet run` with no connection string: real initdb, real pg_ctl, real server processes.</summary>
public sealed class EmbeddedPostgresSpecs : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"kraud-pg-spec-{Guid.NewGuid():N}"[..30]);

    private string DataDirectory => Path.Combine(_root, "pg");

    private static async Task<string> VersionAsync(EmbeddedPostgres pg) =>
        (await SqlScalar.ValueAsync<string>(pg.ConnectionString, "select current_database() || ' ' || version()"))!;

    [Fact]
    public async Task a_first_start_creates_a_cluster_on_loopback_and_a_second_start_reuses_its_data()
    {
        await using (var pg = await EmbeddedPostgres.StartAsync(DataDirectory, "kraud", durable: false))
        {
            Assert.StartsWith("Host=127.0.0.1", pg.ConnectionString);
            Assert.StartsWith("kraud PostgreSQL", await VersionAsync(pg));
            await using var connection = new NpgsqlConnection(pg.ConnectionString);
            await connection.OpenAsync();
            await new NpgsqlCommand("create table kept (id int); insert into kept values (42);", connection).ExecuteNonQueryAsync();
        }
        await using (var again = await EmbeddedPostgres.StartAsync(DataDirectory, "kraud", durable: false))
        {
            Assert.Equal(42, await SqlScalar.ValueAsync<int>(again.ConnectionString, "select id from kept"));
        }
    }

    [Fact]
    public async Task a_stale_lock_left_by_a_killed_server_is_cleaned_up()
    {
        var first = await EmbeddedPostgres.StartAsync(DataDirectory, "kraud", durable: false);
        var pidFile = Path.Combine(first.DataDirectory, "postmaster.pid");
        var pid = int.Parse((await File.ReadAllLinesAsync(pidFile))[0], CultureInfo.InvariantCulture);
        Process.GetProcessById(pid).Kill(entireProcessTree: false);
        await Task.Delay(500);
        Assert.True(File.Exists(pidFile), "a killed postmaster leaves its lock file behind");

        await using var second = await EmbeddedPostgres.StartAsync(DataDirectory, "kraud", durable: false);
        Assert.StartsWith("kraud PostgreSQL", await VersionAsync(second));
    }

    [Fact]
    public async Task stopping_ends_the_server_process()
    {
        var pg = await EmbeddedPostgres.StartAsync(DataDirectory, "kraud", durable: false);
        var pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(pg.DataDirectory, "postmaster.pid")))[0], CultureInfo.InvariantCulture);
        await pg.StopAsync();
        await pg.StopAsync();
        Assert.False(File.Exists(Path.Combine(pg.DataDirectory, "postmaster.pid")));
        Assert.True(!File.Exists($"/proc/{pid}/cmdline") || (await File.ReadAllTextAsync($"/proc/{pid}/cmdline")).Length == 0, "the postmaster is gone");
    }

    [Fact]
    public async Task kraud_without_a_connection_string_starts_its_own_server_with_the_host_and_stops_it_after_its_services()
    {
        // `dotnet run --project Kraud.Api` as a newcomer runs it: no connection string, so the embedded default.
        var host = await AlbaHost.For<Program>(builder =>
        {
            foreach (var (key, value) in KraudApp.TestSettings("", _root, heartbeatTimeoutSeconds: 30)) builder.UseSetting(key, value);
        });
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        int pid;
        try
        {
            // Its agents may still be starting (503), but the database it was given answers.
            var answer = await host.Scenario(x =>
            {
                x.Get.Url("/health");
                x.IgnoreStatusCode();
            });
            var health = await answer.ReadAsJsonAsync<JsonElement>();
            Assert.True(health.GetProperty("database").GetBoolean(), health.ToString());
            pid = int.Parse((await File.ReadAllLinesAsync(pidFile))[0], CultureInfo.InvariantCulture);
        }
        finally
        {
            await host.DisposeAsync();
        }
        Assert.False(File.Exists(pidFile), "the server stopped with the host");
        Assert.True(!File.Exists($"/proc/{pid}/cmdline") || (await File.ReadAllTextAsync($"/proc/{pid}/cmdline")).Length == 0, "the postmaster is gone");
    }

    [Fact]
    public void without_binaries_the_error_names_the_three_ways_out()
    {
        var message = new PostgresBinariesNotFoundException().Message;
        Assert.Contains("apt-get install postgresql", message);
        Assert.Contains("docker compose up", message);
        Assert.Contains("KRAUD_DATABASE", message);
        Assert.Contains("ConnectionStrings:Kraud", message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }
}
