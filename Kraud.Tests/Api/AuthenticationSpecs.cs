using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class AuthenticationSpecs(KraudApp app)
{
    [Fact]
    public async Task a_request_without_a_token_is_401_unauthenticated()
    {
        var r = await app.Host.GraphQL(null, "{ me { role } }", status: 401);
        r.ShouldFailWith("UNAUTHENTICATED");
    }

    [Fact]
    public async Task a_request_with_an_unknown_token_is_401_unauthenticated()
    {
        (await app.Host.GraphQL("krd_not-a-token", "{ me { role } }", status: 401)).ShouldFailWith("UNAUTHENTICATED");
    }

    [Fact]
    public async Task the_bootstrap_token_is_an_operator()
    {
        var me = (await app.AsOperator("{ me { tokenId role tenant { id } } }")).ShouldSucceed().Data.GetProperty("me");
        Assert.Equal("OPERATOR", me.GetProperty("role").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, me.GetProperty("tenant").ValueKind);
    }

    [Fact]
    public async Task a_tenant_token_knows_its_role_and_tenant()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var member = await tenant.TokenAsync("MEMBER");
        var me = (await app.Host.GraphQL(member, "{ me { role tenant { id name } } }")).ShouldSucceed().Data.GetProperty("me");
        Assert.Equal("MEMBER", me.GetProperty("role").GetString());
        Assert.Equal(tenant.Name, me.GetProperty("tenant").GetProperty("name").GetString());
    }

    [Fact]
    public async Task a_revoked_token_no_longer_authenticates()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = (await tenant.Gql("mutation { createApiToken(input: {role: MEMBER, name: \"short-lived\"}) { id token role } }")).ShouldSucceed()
            .Data.GetProperty("createApiToken");
        var secret = created.GetProperty("token").GetString()!;
        (await app.Host.GraphQL(secret, "{ me { role } }")).ShouldSucceed();

        var revoked = (await tenant.Gql("mutation($id: ID!) { revokeApiToken(id: $id) }", new { id = created.Id() })).ShouldSucceed();
        Assert.True(revoked.Data.GetProperty("revokeApiToken").GetBoolean());
        (await app.Host.GraphQL(secret, "{ me { role } }", status: 401)).ShouldFailWith("UNAUTHENTICATED");
    }

    [Fact]
    public async Task members_cannot_issue_tokens_and_auditors_cannot_change_pods()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var member = await tenant.TokenAsync("MEMBER");
        (await app.Host.GraphQL(member, "mutation { createApiToken(input: {role: MEMBER, name: \"x\"}) { token } }")).ShouldFailWith("FORBIDDEN");
        var auditor = await tenant.TokenAsync("AUDITOR");
        var before = await tenant.EventCountAsync();
        (await app.Host.GraphQL(auditor, "mutation { createPod(input: {name: \"x\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }"))
            .ShouldFailWith("FORBIDDEN");
        (await app.Host.GraphQL(auditor, "{ pods { totalCount } }")).ShouldFailWith("FORBIDDEN");
        (await app.Host.GraphQL(auditor, "{ auditLog { totalCount } }")).ShouldSucceed();
        Assert.Equal(before, await tenant.EventCountAsync());
    }

    [Fact]
    public async Task tokens_are_stored_only_as_hashes()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var secret = await tenant.TokenAsync("MEMBER");
        Assert.Equal(0L, await SqlScalar.ScalarAsync(app.ConnectionString,
            "select (select count(*) from kraud.mt_events where data::text like '%' || $1 || '%') + (select count(*) from kraud.mt_doc_apitokenview where data::text like '%' || $1 || '%')",
            secret));
    }
}
