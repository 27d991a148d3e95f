using System.Text.Json;
using Kraud.Api.Audit;
using Kraud.Projections.Audit;
using Kraud.Projections.Common;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit.Abstractions;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class AuditChainSpecs(KraudApp app)
{
    private const string Verify = "{ verifyAuditChain { valid entries firstBrokenSeq headHash } }";

    [Fact]
    public async Task the_audit_chain_verifies_and_an_edited_row_is_found()
    {
        var tenant = await TenantScope.CreateAsync(app);
        await tenant.CreatePodAsync("chained");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));

        var ok = (await app.AsOperator(Verify)).ShouldSucceed().Data.GetProperty("verifyAuditChain");
        Assert.True(ok.GetProperty("valid").GetBoolean());
        Assert.True(ok.GetProperty("entries").GetInt32() > 0);

        var victim = (await tenant.Gql("{ auditLog(first: 1) { nodes { seq actor } } }")).ShouldSucceed()
            .Data.GetProperty("auditLog").GetProperty("nodes")[0];
        var seq = victim.GetProperty("seq").GetInt64();
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await Execute(connection, "update kraud.mt_doc_auditentry set data = jsonb_set(data, '{Actor}', '\"token:somebody-else\"') where id = @id", seq);
        try
        {
            var broken = (await app.AsOperator(Verify)).ShouldSucceed().Data.GetProperty("verifyAuditChain");
            Assert.False(broken.GetProperty("valid").GetBoolean());
            Assert.Equal(seq, broken.GetProperty("firstBrokenSeq").GetInt64());
        }
        finally
        {
            await Execute(connection, $"update kraud.mt_doc_auditentry set data = jsonb_set(data, '{{Actor}}', '\"{victim.GetProperty("actor").GetString()}\"') where id = @id", seq);
        }
        Assert.True((await app.AsOperator(Verify)).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());
    }

    [Fact]
    public async Task two_api_nodes_signing_the_same_head_at_once_leave_one_digest_and_both_hand_out_that_one()
    {
        await TenantScope.CreateAsync(app); // moves the head past any digest signed so far
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var key = app.Host.Services.GetRequiredService<AuditSigningKey>();
        // Two nodes with clocks a second apart: their signatures of one head differ, so a second digest would show.
        var nodes = new[] { new AuditDigests(app.Store, key, TimeProvider.System), new AuditDigests(app.Store, key, new ClockAhead(TimeSpan.FromSeconds(1))) };

        var signed = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() => nodes[i % 2].SignHeadAsync(CancellationToken.None))));

        var head = Assert.Single(signed.Select(d => d!.Id).Distinct());
        await using var session = app.Store.QuerySession();
        var stored = await session.LoadAsync<AuditDigest>(head);
        Assert.All(signed, d => Assert.Equal((stored!.SignedAt, stored.Signature), (d!.SignedAt, d.Signature)));
    }

    private sealed class ClockAhead(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + by;
    }

    [Fact]
    public async Task a_deleted_row_breaks_the_chain_where_it_was()
    {
        var tenant = await TenantScope.CreateAsync(app);
        await tenant.CreatePodAsync("gap");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var seq = (await tenant.Gql("{ auditLog(first: 1) { nodes { seq } } }")).ShouldSucceed()
            .Data.GetProperty("auditLog").GetProperty("nodes")[0].GetProperty("seq").GetInt64();
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await Execute(connection, "create temp table saved as select * from kraud.mt_doc_auditentry where id = @id", seq);
        await Execute(connection, "delete from kraud.mt_doc_auditentry where id = @id", seq);
        try
        {
            var broken = (await app.AsOperator(Verify)).ShouldSucceed().Data.GetProperty("verifyAuditChain");
            Assert.False(broken.GetProperty("valid").GetBoolean());
            Assert.Equal(seq, broken.GetProperty("firstBrokenSeq").GetInt64());
        }
        finally
        {
            await Execute(connection, "insert into kraud.mt_doc_auditentry select * from saved", seq);
        }
    }

    [Fact]
    public async Task members_cannot_read_the_audit_log()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var member = await tenant.TokenAsync("MEMBER");
        (await app.Host.GraphQL(member, "{ auditLog { totalCount } }")).ShouldFailWith("FORBIDDEN");
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, long id)
    {
        await using var cmd = new NpgsqlCommand(sql, connection);
        cmd.Parameters.AddWithValue("id", id);
        await cmd.ExecuteNonQueryAsync();
    }
}

[Collection(ApiCollection.Name)]
public class ProjectionRebuildSpecs(KraudApp app, ITestOutputHelper output)
{
    private async Task<List<(long Id, string Data)>> EntriesAsync()
    {
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        // The duplicated columns too: a rebuild fills them as the live projection does.
        await using var cmd = new NpgsqlCommand("select id, concat_ws(' | ', data::text, tenant_id, at, resource_id) from kraud.mt_doc_auditentry order by id", connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<(long, string)>();
        while (await reader.ReadAsync()) rows.Add((reader.GetInt64(0), reader.GetString(1)));
        return rows;
    }

    /// <remarks>
    /// A tombstone's entry has no time (<c>DateTimeOffset.MinValue</c>), which Npgsql writes as <c>-infinity</c> and the JSON
    /// keeps as year 1: the same instant to every query.
    /// </remarks>
    private Task<string?> EntriesWhoseColumnsDifferFromTheirDocumentsAsync() => SqlScalar.ValueAsync<string>(app.ConnectionString, """
        select string_agg(concat_ws(' | ', id, tenant_id, at, resource_id, data::text), E'\n') from kraud.mt_doc_auditentry
        where tenant_id is distinct from (data ->> 'TenantId')::uuid
           or at is distinct from (case when (data ->> 'At')::timestamptz = '0001-01-01T00:00:00Z' then '-infinity' else (data ->> 'At')::timestamptz end)
           or resource_id is distinct from (data ->> 'ResourceId')::uuid
        """);

    /// <summary>The entries table's indexes and constraints as PostgreSQL describes them.</summary>
    private async Task<List<string>> EntriesSchemaAsync()
    {
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand("""
            select indexdef from pg_indexes where schemaname = 'kraud' and tablename = 'mt_doc_auditentry'
            union all
            select contype::text || ' ' || pg_get_constraintdef(oid) from pg_constraint where conrelid = 'kraud.mt_doc_auditentry'::regclass
            order by 1
            """, connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync()) rows.Add(reader.GetString(0));
        return rows;
    }

    private async Task<JsonElement> RebuildAsync(string name)
    {
        var started = (await app.AsOperator("mutation($n: String!) { rebuildProjection(name: $n) { name state startedAt } }", new { n = name })).ShouldSucceed();
        Assert.Equal(name, started.Data.GetProperty("rebuildProjection").GetProperty("name").GetString());
        var done = await Eventually.Get(async () => (await app.AsOperator(
                    "query($n: String!) { rebuildJob(name: $n) { state eventsProcessed eventsTotal eventsPerSecond etaSeconds elapsedSeconds } }", new { n = name }))
                .ShouldSucceed().Data.GetProperty("rebuildJob"),
            j => j.GetProperty("state").GetString() != "RUNNING", TimeSpan.FromSeconds(60), $"{name} was rebuilt");
        Assert.Equal("COMPLETED", done.GetProperty("state").GetString());
        Assert.True(done.GetProperty("eventsProcessed").GetInt32() > 0);
        Assert.InRange(done.GetProperty("eventsProcessed").GetInt32(), 1, done.GetProperty("eventsTotal").GetInt32());
        Assert.True(done.GetProperty("eventsPerSecond").GetDouble() > 0);
        Assert.Equal(0, done.GetProperty("etaSeconds").GetDouble());
        // Ended, the job keeps the time and rate it ended with, however much later it is asked.
        await Task.Delay(250);
        var later = (await app.AsOperator("query($n: String!) { rebuildJob(name: $n) { state elapsedSeconds eventsPerSecond } }", new { n = name }))
            .ShouldSucceed().Data.GetProperty("rebuildJob");
        Assert.Equal((done.GetProperty("elapsedSeconds").GetDouble(), done.GetProperty("eventsPerSecond").GetDouble()),
            (later.GetProperty("elapsedSeconds").GetDouble(), later.GetProperty("eventsPerSecond").GetDouble()));
        return done;
    }

    private Task<long> LastSeqAsync() => SqlScalar.ScalarAsync(app.ConnectionString, "select max(seq_id) from kraud.mt_events");

    [Fact]
    public async Task a_rebuild_of_the_audit_chain_while_pods_are_created_ends_with_the_chain_a_rebuild_at_rest_makes()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = new System.Collections.Concurrent.ConcurrentBag<(string Id, DateTime At)>();
        using var stop = new CancellationTokenSource();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // About 100 createPod/s: eight writers, each paced at one call every 80 ms, until the rebuild is over (at most 400).
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested && created.Count < 400; i++)
            {
                var pod = await tenant.CreatePodAsync($"load-{w}-{i}", memoryMiB: 64);
                created.Add((pod.Id(), DateTime.UtcNow));
                var due = TimeSpan.FromMilliseconds(80 * (i + 1)) - clock.Elapsed;
                if (due > TimeSpan.Zero) await Task.Delay(due);
            }
        })).ToList();

        await Eventually.Until(() => Task.FromResult(created.Count >= 40), TimeSpan.FromSeconds(30), "the load runs");
        var rebuildStarted = DateTime.UtcNow;
        var before = await LastSeqAsync();
        var job = await RebuildAsync("AuditChain");
        var rebuildEnded = DateTime.UtcNow;
        await Task.Delay(300);
        await stop.CancelAsync();
        await Task.WhenAll(writers);
        output.WriteLine($"{created.Count} pods created in {clock.Elapsed.TotalSeconds:F1} s ({created.Count / clock.Elapsed.TotalSeconds:F0}/s); " +
                         $"the rebuild took {job.GetProperty("elapsedSeconds").GetDouble():F2} s for {job.GetProperty("eventsProcessed").GetInt32()} events");
        Assert.Contains(created, p => p.At < rebuildStarted);
        Assert.Contains(created, p => p.At > rebuildEnded);
        Assert.True(await LastSeqAsync() > before, "events were appended while the chain was rebuilt");

        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(60));
        var underLoad = await EntriesAsync();
        await RebuildAsync("AuditChain");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(60));
        var atRest = await EntriesAsync();
        Assert.True(atRest.Count >= underLoad.Count);
        Assert.Equal(underLoad, atRest.Take(underLoad.Count));
        Assert.True((await app.AsOperator("{ verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());

        foreach (var (id, _) in created)
            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id })).ShouldSucceed();
    }

    [Fact]
    public async Task after_every_rebuild_of_the_audit_chain_under_load_its_agent_runs_on_and_catches_up()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 6).Select(w => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                created.Add((await tenant.CreatePodAsync($"again-{w}-{i}", memoryMiB: 64)).Id());
                await Task.Delay(60);
            }
        })).ToList();
        var shard = $"{AuditChainProjection.Name}:All";
        var daemon = app.Host.Services.GetRequiredService<Marten.Events.Daemon.Coordination.IProjectionCoordinator>().DaemonForMainDatabase();
        try
        {
            // The agent's batch held over a rebuild fails on the position the rebuild left; each time, the agent must be
            // running again afterwards (a stopped agent the daemon still lists is never restarted by the coordinator).
            for (var round = 0; round < 4; round++)
            {
                await Eventually.Until(() => Task.FromResult(created.Count >= 20 * (round + 1)), TimeSpan.FromSeconds(30), "the load runs");
                await RebuildAsync("AuditChain");
                var mark = await LastSeqAsync();
                await Eventually.Until(async () => await ProgressAsync(shard) >= mark, TimeSpan.FromSeconds(20),
                    () => $"round {round}: the chain's agent goes past {mark} (it is {daemon.StatusFor(shard)})");
                Assert.Equal(JasperFx.AgentStatus.Running, daemon.StatusFor(shard));
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(writers);
        }
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(60));
        Assert.True((await app.AsOperator("{ verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());
        foreach (var id in created)
            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id })).ShouldSucceed();
    }

    private Task<long> ProgressAsync(string shard) =>
        SqlScalar.ScalarAsync(app.ConnectionString, "select last_seq_id from kraud.mt_event_progression where name = $1", shard);

    [Fact]
    public async Task rebuilding_the_audit_chain_from_the_events_gives_the_identical_chain()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("rebuilt", replicas: 2);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var before = await EntriesAsync();
        Assert.NotEmpty(before);
        var schema = await EntriesSchemaAsync();
        Assert.Contains("p PRIMARY KEY (id)", schema);
        // The tenant, time and resource are indexed as columns of their own, which the live projection filled.
        Assert.Contains(schema, index => index.EndsWith("USING btree (tenant_id)", StringComparison.Ordinal));
        Assert.Contains(schema, index => index.EndsWith("USING btree (at)", StringComparison.Ordinal));
        Assert.Contains(schema, index => index.EndsWith("USING btree (resource_id)", StringComparison.Ordinal));
        Assert.Null(await EntriesWhoseColumnsDifferFromTheirDocumentsAsync());

        await RebuildAsync("AuditChain");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var after = await EntriesAsync();
        Assert.True(after.Count >= before.Count);
        Assert.Equal(before, after.Take(before.Count));
        // The load drops the primary key and the indexes and makes them again: the same ones.
        Assert.Equal(schema, await EntriesSchemaAsync());
        Assert.Null(await EntriesWhoseColumnsDifferFromTheirDocumentsAsync());
        Assert.True((await app.AsOperator("{ verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());

        // The chain goes on growing after the rebuild.
        var later = await tenant.CreatePodAsync("after-rebuild");
        await tenant.WaitForPodAsync(later.Id(), "RUNNING");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        Assert.True((await EntriesAsync()).Count > after.Count);
    }

    [Fact]
    public void the_bulk_rebuild_renders_an_entry_as_the_very_json_martens_serializer_makes()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using var json = new Utf8JsonWriter(buffer);
        var entries = new[]
        {
            new AuditEntry { Id = 1, EventSeq = 7, At = new DateTimeOffset(2026, 12, 7, 1, 2, 3, TimeSpan.Zero).AddTicks(4567), Actor = "system",
                Action = "Kraud.Domain.Pods.PodRequested", Outcome = "recorded", Hash = new string('a', 64), PreviousHash = AuditEntry.Genesis },
            new AuditEntry { Id = 2, EventSeq = 8, At = DateTimeOffset.UtcNow, TenantId = Guid.NewGuid(), ResourceId = Guid.NewGuid(),
                Actor = "token:ops <a&b> 'ünïcødé' \"q\" \\ \n", Action = "createPod", Outcome = "accepted", CorrelationId = "c-1", CausationId = "c+2",
                Hash = new string('b', 64), PreviousHash = new string('a', 64) },
        };
        foreach (var entry in entries)
            Assert.Equal(app.Store.Options.Serializer().ToJson(entry), AuditChainRebuild.Render(entry, json, buffer));
    }

    [Fact]
    public async Task rebuilding_a_read_model_keeps_what_it_shows()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("kept");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        await RebuildAsync("PodView");
        var again = (await tenant.PodAsync(pod.Id()))!.Value;
        Assert.Equal(running.State(), again.State());
        Assert.Equal(running.GetProperty("version").GetInt32(), again.GetProperty("version").GetInt32());
        Assert.Equal(running.Instances()[0].Id(), again.Instances()[0].Id());
    }

    [Fact]
    public async Task a_read_model_rebuild_reports_its_shards_position_once_the_rebuild_reset_it_and_never_the_position_from_before()
    {
        // Marten's daemon moves the shard as it rebuilds; the spec moves a shard of its own the same way, by its row.
        var shard = new JasperFx.Events.Projections.ShardName($"Follow{Guid.NewGuid():N}", JasperFx.Events.Projections.ShardName.All, 1);
        Task Move(long position) => SqlScalar.ScalarAsync(app.ConnectionString,
            "insert into kraud.mt_event_progression (name, last_seq_id) values ($1, $2) on conflict (name) do update set last_seq_id = excluded.last_seq_id",
            shard.Identity, position);
        await Move(900);
        var progress = new RebuildProgress();
        progress.Begin(1000);
        using var stop = new CancellationTokenSource();
        var following = Kraud.Api.Replay.RebuildJobs.FollowShardAsync(app.Store, shard, before: 900, progress, TimeSpan.FromMilliseconds(20), stop.Token);

        await Task.Delay(200);
        Assert.Equal(0, progress.Processed); // the old position, not yet reset
        await Move(100);
        await Eventually.Until(() => Task.FromResult(progress.Processed == 100), TimeSpan.FromSeconds(10), "the reset position is the progress");
        await Move(700);
        await Eventually.Until(() => Task.FromResult(progress.Processed == 700), TimeSpan.FromSeconds(10), "the rebuild's pages move it on");
        await Move(900); // back at the old figure, now reached by the rebuild itself
        await Eventually.Until(() => Task.FromResult(progress.Processed == 900), TimeSpan.FromSeconds(10), "the old figure counts once reached again");
        await stop.CancelAsync();
        await following; // ends quietly when the rebuild does
        await SqlScalar.ScalarAsync(app.ConnectionString, "delete from kraud.mt_event_progression where name = $1", shard.Identity);
    }

    [Fact]
    public async Task an_unknown_projection_name_is_a_validation_error_and_tenants_cannot_rebuild()
    {
        (await app.AsOperator("mutation { rebuildProjection(name: \"Nope\") { state } }")).ShouldFailWith("VALIDATION");
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql("mutation { rebuildProjection(name: \"AuditChain\") { state } }")).ShouldFailWith("FORBIDDEN");
    }
}
