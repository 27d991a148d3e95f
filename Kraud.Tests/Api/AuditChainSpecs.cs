using Kraud.Tests.Infrastructure;
using Marten.Events;
using Npgsql;

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
