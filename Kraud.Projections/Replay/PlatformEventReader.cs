using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using Kraud.Domain.Fleet;
using Kraud.Domain.Ingresses;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Marten;
using Npgsql;

namespace Kraud.Projections.Replay;

/// <summary>One row of the log as the platform projection reads it; Data is null for an event the projection does not fold.</summary>
public readonly record struct PlatformEvent(long Seq, DateTimeOffset At, Guid StreamId, object? Data);

/// <summary>
/// Reads the log for the platform projection in one streamed query, and deserializes only the events it folds: those
/// that start a host, pod, volume or ingress, and those of streams it already holds. Tenants, tokens, VPCs, peer sets
/// and the rest are skipped unread, and Marten's event loading (a join per page) is not on the way.
/// </summary>
public sealed class PlatformEventReader(IDocumentStore store, string connectionString, string schema)
{
    private static readonly HashSet<string> Starts =
        [typeof(PodRequested).FullName!, typeof(HostRegistered).FullName!, typeof(VolumeRequested).FullName!, typeof(IngressCreated).FullName!];

    private static readonly ConcurrentDictionary<string, (Type? Type, string Name)> Types = new();

    /// <param name="where">SQL over mt_events (parameters named as in <paramref name="parameters"/>).</param>
    public async IAsyncEnumerable<PlatformEvent> ReadAsync(string where, IReadOnlyDictionary<string, object> parameters, PlatformState state,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var serializer = store.Options.Serializer();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(
            $"select seq_id, timestamp, stream_id, mt_dotnet_type, data::text from {schema}.mt_events where {where} order by seq_id", connection)
        { CommandTimeout = 0 };
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            var seq = reader.GetInt64(0);
            var at = reader.GetFieldValue<DateTimeOffset>(1);
            var stream = reader.IsDBNull(2) ? Guid.Empty : reader.GetGuid(2);
            var (type, name) = Types.GetOrAdd(reader.IsDBNull(3) ? "" : reader.GetString(3), Resolve);
            if (type is null || !(Starts.Contains(name) || state.Holds(stream)))
            {
                yield return new PlatformEvent(seq, at, stream, null);
                continue;
            }
            using var json = new MemoryStream(Encoding.UTF8.GetBytes(reader.GetString(4)));
            yield return new PlatformEvent(seq, at, stream, serializer.FromJson(type, json));
        }
    }

    private static (Type?, string) Resolve(string dotnetType) => (Type.GetType(dotnetType), dotnetType.Split(',')[0]);
}
