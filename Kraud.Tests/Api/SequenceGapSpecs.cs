using Kraud.Projections.Audit;
using Kraud.Tests.Infrastructure;
using Marten;
using Npgsql;

namespace Kraud.Tests.Api;

/// <summary>An application that skips a held hole in the event sequence after 3 s, where Kraud waits a minute: the spec need not wait that long.</summary>
public sealed class SequenceGapApp : KraudApp
{
    protected override IEnumerable<(string Key, string Value)> Settings => [("Events:SkipHeldSequenceGapsAfterSeconds", "3")];
}

[CollectionDefinition(Name)]
public sealed class SequenceGapCollection : ICollectionFixture<SequenceGapApp>
{
    public const string Name = "Kraud sequence gaps";
}

/// <summary>
/// A rolled-back append leaves a hole in the event sequence. The async daemon does not pass one while a transaction older
/// than it is open (that transaction could still commit into it), and a node that takes the projections over cannot tell
/// an idle old transaction from the hole's owner: after a rolling restart the audit chain stood still for minutes.
/// </summary>
[Collection(SequenceGapCollection.Name)]
public sealed class SequenceGapSpecs(SequenceGapApp app)
{
    [Fact]
    public async Task a_hole_in_the_event_sequence_holds_the_audit_chain_no_longer_than_the_bound_even_behind_a_transaction_that_stays_open()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.CreatePodAsync("before-the-hole");
        await tenant.WaitForPodAsync(before.Id(), "RUNNING");
        await UntilAuditedAsync(Guid.Parse(before.Id()), TimeSpan.FromSeconds(30));

        // A transaction that began before the hole and stays open for 90 s, busy (so no proof of idleness excuses it).
        await using var old = new NpgsqlConnection(app.ConnectionString);
        await old.OpenAsync();
        await using var transaction = await old.BeginTransactionAsync();
        await using var sleep = new NpgsqlCommand("select pg_sleep(90)", old, transaction) { CommandTimeout = 0 };
        var sleeping = sleep.ExecuteNonQueryAsync();
        try
        {
            await using (var db = new NpgsqlConnection(app.ConnectionString))
            {
                await db.OpenAsync();
                await Eventually.Until(async () => await db.ScalarAsync(
                        "select count(*) from pg_stat_activity where query = 'select pg_sleep(90)' and state = 'active'") == 1,
                    TimeSpan.FromSeconds(10), "the old transaction is running");
                // The hole: a sequence number taken and never used, as a rolled-back append leaves one.
                await db.ScalarAsync($"select nextval('{Kraud.Api.Common.KraudDatabase.Schema}.mt_events_sequence')");
            }
            var after = await tenant.CreatePodAsync("after-the-hole");
            await tenant.WaitForPodAsync(after.Id(), "RUNNING");

            // The bound (3 s here) and the daemon's settle time pass long before the old transaction ends.
            await UntilAuditedAsync(Guid.Parse(after.Id()), TimeSpan.FromSeconds(45));
            Assert.False(sleeping.IsCompleted, "the old transaction had ended before the chain passed the hole, so the bound was not what let it pass");
            Assert.True((await app.AsOperator("{ verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());
        }
        finally
        {
            sleep.Cancel();
            await Assert.ThrowsAnyAsync<Exception>(() => sleeping);
        }
    }

    /// <summary>Until every event of the stream has its audit entry.</summary>
    private async Task UntilAuditedAsync(Guid stream, TimeSpan within)
    {
        await using var session = app.Store.QuerySession();
        var last = (await session.Events.FetchStreamStateAsync(stream))!;
        var events = await session.Events.FetchStreamAsync(stream);
        var sequences = events.Select(e => e.Sequence).ToHashSet();
        await Eventually.Until(async () =>
        {
            await using var query = app.Store.QuerySession();
            var audited = await query.Query<AuditEntry>().Where(a => a.ResourceId == stream).Select(a => a.EventSeq).ToListAsync();
            return sequences.All(s => audited.Contains(s));
        }, within, $"the audit chain covers the {sequences.Count} events of stream {stream} (version {last.Version})");
    }
}
