using Kraud.Api.Common;
using Kraud.Api.Configuration;
using Kraud.Projections.Audit;
using Kraud.Tests.Infrastructure;
using Marten;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Weasel.Core;

namespace Kraud.Tests.Database;

/// <summary>
/// The audit entries' tenant, time and resource were indexes over values cast out of the JSON until session 19; they
/// are columns of their own now (cheaper to index again in a chain rebuild). A database of an earlier version gets the
/// columns when a node starts on it, filled from the documents it already holds.
/// </summary>
public sealed class AuditEntrySchemaSpecs
{
    [Fact]
    public async Task an_entries_table_of_an_earlier_version_gets_its_columns_filled_from_its_documents_when_a_node_starts_on_it()
    {
        var connectionString = await TestDatabase.CreateAsync("auditcols");
        try
        {
            var tenant = Guid.NewGuid();
            var resource = Guid.NewGuid();
            var at = new DateTimeOffset(2026, 12, 8, 1, 2, 3, TimeSpan.Zero).AddTicks(4560);
            using (var earlier = DocumentStore.For(o =>
                   {
                       o.Connection(connectionString);
                       o.DatabaseSchemaName = KraudDatabase.Schema;
                       o.UseSystemTextJsonForSerialization(EnumStorage.AsString);
                       o.Schema.For<AuditEntry>().Index(x => x.TenantId).Index(x => x.At).Index(x => x.ResourceId);
                   }))
            {
                await using var session = earlier.LightweightSession();
                session.Store(new AuditEntry { Id = 1, EventSeq = 1, At = at, TenantId = tenant, ResourceId = resource, Actor = "token:x", Action = "createPod", Outcome = "accepted" });
                session.Store(new AuditEntry { Id = 2, EventSeq = 2, At = at.AddSeconds(1), Actor = "system", Action = "HostRegistered", Outcome = "recorded" });
                await session.SaveChangesAsync();
            }

            // Kraud's store as a node configures it; starting, the node applies every configured change.
            await using var services = new ServiceCollection().AddLogging()
                .AddSingleton<IConfiguration>(new ConfigurationBuilder().Build()).AddKraudMarten(connectionString).BuildServiceProvider();
            var store = services.GetRequiredService<IDocumentStore>();
            await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();

            await using (var connection = new NpgsqlConnection(connectionString))
            {
                await connection.OpenAsync();
                await using var cmd = new NpgsqlCommand($"select id, tenant_id, at, resource_id from {KraudDatabase.Schema}.mt_doc_auditentry order by id", connection);
                await using var reader = await cmd.ExecuteReaderAsync();
                var rows = new List<(long, Guid?, DateTimeOffset, Guid?)>();
                while (await reader.ReadAsync())
                    rows.Add((reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetGuid(1), reader.GetFieldValue<DateTimeOffset>(2), reader.IsDBNull(3) ? null : reader.GetGuid(3)));
                Assert.Equal([(1L, tenant, at, resource), (2L, null, at.AddSeconds(1), null)], rows);
            }
            await using var query = store.QuerySession();
            Assert.Equal([1L], await query.Query<AuditEntry>().Where(e => e.TenantId == tenant).Select(e => e.Id).ToListAsync());
            Assert.Equal([1L], await query.Query<AuditEntry>().Where(e => e.ResourceId == resource).Select(e => e.Id).ToListAsync());
            Assert.Equal([2L], await query.Query<AuditEntry>().Where(e => e.At > at).Select(e => e.Id).ToListAsync());
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await TestDatabase.DropAsync(connectionString);
        }
    }
}
