using System.Text;
using Kraud.HostRuntime.Configuration;
using Npgsql;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// Where a command to a host runtime process can be on its way, read straight from the database for a failure message:
/// the control plane's outbox and dead letters, the host's queue table (and its scheduled table), the host's own inbox,
/// dead letters and Wolverine nodes. A message that was never handled is in exactly one of those places, or in none
/// (it was never sent).
/// </summary>
public static class EnvelopeTables
{
    private const string ControlPlaneSchema = "wolverine";

    public static async Task<string> DescribeAsync(string connectionString, IEnumerable<string> hostNames)
    {
        var text = new StringBuilder();
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await DumpAsync(connection, text, $"{ControlPlaneSchema}.wolverine_outgoing_envelopes", "control plane outbox");
            await DumpAsync(connection, text, $"{ControlPlaneSchema}.wolverine_dead_letters", "control plane dead letters");
            foreach (var name in hostNames)
            {
                var queue = Host.QueueName(name);
                var schema = "hostrt_" + name.Replace('-', '_');
                await DumpAsync(connection, text, $"{QueueTransport.Schema}.wolverine_queue_{queue}", $"queue of {name}");
                await DumpAsync(connection, text, $"{QueueTransport.Schema}.wolverine_queue_{queue}_scheduled", $"scheduled queue of {name}");
                await DumpAsync(connection, text, $"{schema}.wolverine_incoming_envelopes", $"inbox of {name}");
                await DumpAsync(connection, text, $"{schema}.wolverine_dead_letters", $"dead letters of {name}");
                await DumpAsync(connection, text, $"{schema}.wolverine_nodes", $"Wolverine nodes of {name}");
            }
        }
        catch (NpgsqlException e)
        {
            text.Append("\n(the envelope tables could not be read: ").Append(e.Message).Append(')');
        }
        return text.ToString();
    }

    private static async Task DumpAsync(NpgsqlConnection connection, StringBuilder text, string table, string what)
    {
        text.Append("\n--- ").Append(what).Append(" (").Append(table).Append("):");
        await using (var exists = new NpgsqlCommand("select to_regclass(@t) is not null", connection))
        {
            exists.Parameters.AddWithValue("t", table);
            if (await exists.ExecuteScalarAsync() is not true)
            {
                text.Append(" no such table");
                return;
            }
        }
        // Every column but the serialized body: ids, message types, owners, attempts, times, errors.
        await using var rows = new NpgsqlCommand($"select (to_jsonb(t) - 'body')::text from {table} t limit 50", connection);
        await using var reader = await rows.ExecuteReaderAsync();
        var count = 0;
        while (await reader.ReadAsync())
        {
            text.Append("\n  ").Append(reader.GetString(0));
            count++;
        }
        if (count == 0) text.Append(" empty");
    }
}
