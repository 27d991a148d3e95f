using Npgsql;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A count or a value read straight from the database, for specs that check what the log or a table holds.
/// Parameters are positional (<c>$1</c>, <c>$2</c>…) so a spec states its SQL and its values in one call.
/// </summary>
public static class SqlScalar
{
    public static async Task<long> ScalarAsync(this NpgsqlConnection db, string sql, params object[] parameters) =>
        Convert.ToInt64(await db.ValueAsync<object>(sql, parameters) ?? 0L, CultureInfo.InvariantCulture);

    /// <summary>Opens a connection of its own: for specs that hold none.</summary>
    public static async Task<long> ScalarAsync(string connectionString, string sql, params object[] parameters)
    {
        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync();
        return await db.ScalarAsync(sql, parameters);
    }

    /// <summary>The first column of the first row, or default when the query answers no row or NULL.</summary>
    public static async Task<T?> ValueAsync<T>(this NpgsqlConnection db, string sql, params object[] parameters)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        foreach (var parameter in parameters) cmd.Parameters.Add(new NpgsqlParameter { Value = parameter });
        return await cmd.ExecuteScalarAsync() is T value ? value : default;
    }

    public static async Task<T?> ValueAsync<T>(string connectionString, string sql, params object[] parameters)
    {
        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync();
        return await db.ValueAsync<T>(sql, parameters);
    }
}
