using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class CommandErrorSpecs(KraudApp app)
{
    [Theory]
    [InlineData("{name: \"Bad_Name\", image: \"nginx\", cpu: 1, memoryMiB: 128}", "name")]
    [InlineData("{name: \"ok\", image: \"nginx\", cpu: 0, memoryMiB: 128}", "cpu")]
    [InlineData("{name: \"ok\", image: \"nginx\", cpu: 1, memoryMiB: 128, replicas: 99}", "replicas")]
    [InlineData("{name: \"ok\", image: \"\", cpu: 1, memoryMiB: 128}", "image")]
    [InlineData("{name: \"ok\", image: \"nginx\", cpu: 1, memoryMiB: 128, env: {A: 1}}", "env.A")]
    [InlineData("{name: \"ok\", image: \"nginx\", cpu: 1, memoryMiB: 128, confidential: true, replicas: 2}", "replicas must be 1")]
    public async Task invalid_pod_input_is_a_validation_error_that_appends_nothing(string input, string mentions)
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.EventCountAsync();
        var r = (await tenant.Gql($"mutation {{ createPod(input: {input}) {{ id }} }}")).ShouldFailWith("VALIDATION");
        Assert.Contains(mentions, r.FirstErrorMessage);
        Assert.Equal(before, await tenant.EventCountAsync());
        Assert.Equal(0, (await tenant.Gql("{ pods { totalCount } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("totalCount").GetInt32());
    }

    [Fact]
    public async Task a_stale_expected_version_is_a_conflict_that_appends_nothing()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("versioned");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var version = running.GetProperty("version").GetInt32();
        var before = await tenant.EventCountAsync();

        var stale = (await tenant.Gql("mutation($id: ID!, $v: Int) { scalePod(id: $id, replicas: 2, expectedVersion: $v) { id } }",
            new { id = pod.Id(), v = version - 1 })).ShouldFailWith("CONFLICT");
        Assert.Contains($"version {version}", stale.FirstErrorMessage);
        Assert.Equal(before, await tenant.EventCountAsync());

        var scaled = (await tenant.Gql("mutation($id: ID!, $v: Int) { scalePod(id: $id, replicas: 2, expectedVersion: $v) { replicas version } }",
            new { id = pod.Id(), v = version })).ShouldSucceed().Data.GetProperty("scalePod");
        Assert.Equal(2, scaled.GetProperty("replicas").GetInt32());
        Assert.True(scaled.GetProperty("version").GetInt32() > version);
    }

    [Fact]
    public async Task two_writers_with_the_same_expected_version_cannot_both_win()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("raced");
        var version = (await tenant.WaitForPodAsync(pod.Id(), "RUNNING")).GetProperty("version").GetInt32();
        var attempts = await Task.WhenAll(Enumerable.Range(2, 4).Select(n =>
            tenant.Gql("mutation($id: ID!, $v: Int, $n: Int!) { scalePod(id: $id, replicas: $n, expectedVersion: $v) { replicas } }",
                new { id = pod.Id(), v = version, n = n })));
        Assert.Single(attempts, a => a.ErrorCodes.Count == 0);
        Assert.All(attempts.Where(a => a.ErrorCodes.Count > 0), a => a.ShouldFailWith("CONFLICT"));
    }

    [Fact]
    public async Task a_pod_name_is_unique_within_its_namespace_until_the_pod_is_gone()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var first = await tenant.CreatePodAsync("unique");
        await tenant.WaitForPodAsync(first.Id(), "RUNNING");
        var before = await tenant.EventCountAsync();
        (await tenant.Gql("mutation { createPod(input: {name: \"unique\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldFailWith("CONFLICT");
        Assert.Equal(before, await tenant.EventCountAsync());
        (await tenant.Gql("mutation { createPod(input: {name: \"unique\", namespace: \"other\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldSucceed();

        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = first.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(first.Id(), "STOPPED");
        (await tenant.Gql("mutation { createPod(input: {name: \"unique\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldSucceed();
    }

    [Fact]
    public async Task a_tenant_name_can_be_taken_once()
    {
        var tenant = await TenantScope.CreateAsync(app);
        (await app.AsOperator("mutation($n: String!) { createTenant(input: {name: $n}) { id } }", new { n = tenant.Name })).ShouldFailWith("CONFLICT");
    }

    [Fact]
    public async Task an_operator_must_use_a_tenant_token_to_create_pods()
    {
        var r = (await app.AsOperator("mutation { createPod(input: {name: \"x\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldFailWith("VALIDATION");
        Assert.Contains("tenant", r.FirstErrorMessage);
    }

    [Fact]
    public async Task an_id_that_is_no_uuid_names_nothing()
    {
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql("mutation { deletePod(id: \"nope\") { id } }")).ShouldFailWith("NOT_FOUND");
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = Guid.NewGuid() })).ShouldFailWith("NOT_FOUND");
    }

    [Fact]
    public async Task every_query_and_mutation_of_the_served_schema_has_a_resolver()
    {
        // The check Kraud makes when it builds its schema, which this running application passed.
        Assert.Contains("Query.volumes", Kraud.Api.Gql.KraudSchema.Unresolved(new HashSet<(string, string)>()));
        Assert.Contains("Mutation.launchApp", Kraud.Api.Gql.KraudSchema.Unresolved(new HashSet<(string, string)>()));
        (await app.AsOperator("{ volumes { totalCount } }")).ShouldSucceed();
    }
}

[Collection(ApiCollection.Name)]
public class RejectedCommandSpecs(KraudApp app)
{
    [Fact]
    public async Task a_refused_command_appends_no_event_but_is_audited_in_the_rejection_chain()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var me = (await tenant.Gql("{ me { tokenId } }")).ShouldSucceed().Data.GetProperty("me").GetProperty("tokenId").GetString();
        var before = await tenant.EventCountAsync();
        (await tenant.Gql("mutation { createPod(input: {name: \"Not Valid\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldFailWith("VALIDATION");
        Assert.Equal(before, await tenant.EventCountAsync());

        var rejected = await Eventually.Get(async () => (await tenant.Gql("{ rejectedCommands { totalCount nodes { actor action outcome tenantId hash previousHash } } }"))
                .ShouldSucceed().Data.GetProperty("rejectedCommands"),
            r => r.GetProperty("totalCount").GetInt32() > 0, TimeSpan.FromSeconds(15), "the refusal was audited");
        var entry = rejected.GetProperty("nodes")[0];
        Assert.Equal($"token:{me}", entry.GetProperty("actor").GetString());
        Assert.Equal("CreatePod", entry.GetProperty("action").GetString());
        Assert.StartsWith("rejected VALIDATION:", entry.GetProperty("outcome").GetString());
        Assert.Equal(tenant.Id.ToString(), entry.GetProperty("tenantId").GetString());
        Assert.Matches("^[0-9a-f]{64}$", entry.GetProperty("hash").GetString()!);

        var other = await TenantScope.CreateAsync(app);
        Assert.Equal(0, (await other.Gql("{ rejectedCommands { totalCount } }")).ShouldSucceed().Data.GetProperty("rejectedCommands").GetProperty("totalCount").GetInt32());
        Assert.True((await app.AsOperator("{ verifyRejectedCommands { valid entries } }")).ShouldSucceed()
            .Data.GetProperty("verifyRejectedCommands").GetProperty("valid").GetBoolean());
    }
}
