using System.Diagnostics;
using System.Text.RegularExpressions;
using Npgsql;

namespace Kraud.Bench;

/// <summary>
/// What the bench's own PostgreSQL commits per second when nothing but single-row durable inserts ask it to (pgbench with a
/// custom script on a scratch table, as many clients as the bench has): the ceiling Kraud's commits per second are set
/// against. It runs on the same server as the application, in the same run, with the application idle beside it (its
/// queue polling and lease renewals still run), so both figures see the same disk, settings and neighbours.
/// </summary>
public static partial class PgbenchCeiling
{
    private const string Table = "bench_pgbench_ceiling";

    public sealed record Result(double CommitsPerSecond, long Transactions, int Clients, int Seconds);

    public static async Task<Result> MeasureAsync(BenchApp app, int clients, int seconds = 10)
    {
        var pgbench = Path.Combine(app.PostgresBinDirectory ?? EmbeddedPostgresBin(), "pgbench");
        if (!File.Exists(pgbench)) throw new FileNotFoundException("pgbench is needed for the ceiling (Debian's postgresql-client package)", pgbench);
        var connection = new NpgsqlConnectionStringBuilder(app.ConnectionString);
        await ExecuteAsync(app.ConnectionString, $"create table if not exists {Table} (id bigserial primary key, at timestamptz not null default now(), payload text not null)");
        var script = Path.Combine(Path.GetTempPath(), $"kraud-pgbench-{Guid.NewGuid():N}.sql");
        try
        {
            await File.WriteAllTextAsync(script, $"insert into {Table} (payload) values ('ceiling');\n");
            var start = new ProcessStartInfo(pgbench)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // -n: no vacuum of pgbench's own tables (there are none); -j: a thread per core at most, like the bench's clients.
            foreach (var arg in new[]
                     {
                         "-n", "-h", connection.Host!, "-p", connection.Port.ToString(CultureInfo.InvariantCulture), "-U", connection.Username!,
                         "-c", clients.ToString(CultureInfo.InvariantCulture), "-j", Math.Min(clients, Environment.ProcessorCount).ToString(CultureInfo.InvariantCulture),
                         "-T", seconds.ToString(CultureInfo.InvariantCulture), "-f", script, connection.Database!,
                     })
                start.ArgumentList.Add(arg);
            using var process = Process.Start(start) ?? throw new InvalidOperationException("pgbench did not start");
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            var text = await output;
            if (process.ExitCode != 0) throw new InvalidOperationException($"pgbench exited with {process.ExitCode}: {await error}{text}");
            var tps = TpsLine().Match(text);
            var count = TransactionsLine().Match(text);
            if (!tps.Success || !count.Success) throw new InvalidOperationException($"pgbench printed no rate: {text}");
            return new Result(double.Parse(tps.Groups["n"].Value, CultureInfo.InvariantCulture), long.Parse(count.Groups["n"].Value, CultureInfo.InvariantCulture), clients, seconds);
        }
        finally
        {
            File.Delete(script);
            await ExecuteAsync(app.ConnectionString, $"drop table if exists {Table}");
        }
    }

    private static string EmbeddedPostgresBin() =>
        Kraud.Api.Database.PostgresBinaries.Find() ?? throw new InvalidOperationException("no PostgreSQL binaries found for pgbench");

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        await cmd.ExecuteNonQueryAsync();
    }

    [GeneratedRegex(@"tps = (?<n>[0-9.]+) \(without initial connection time\)", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex TpsLine();

    [GeneratedRegex(@"number of transactions actually processed: (?<n>[0-9]+)", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex TransactionsLine();
}
