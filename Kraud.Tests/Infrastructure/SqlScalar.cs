using Npgsql;

namespace Kraud.Tests.Infrastructure;

/// <summary>A count or a number read straight from the database, for specs that check what the log or a table holds.</summary>
public static class SqlScalar
{
    public static async Task<long> ScalarAsync(this NpgsqlConnection db, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
