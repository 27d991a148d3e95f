using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kraud.Api.Common;
using Kraud.Api.Idempotency;
using Kraud.Projections.Access;
using Kraud.Projections.Pods;
using Kraud.Tests.Infrastructure;
using Marten;

namespace Kraud.Tests.Api;

/// <summary>
/// Idempotency-Key on mutations: a client that lost its connection retries with the same key and gets the first answer,
/// never a second resource.
/// </summary>
[Collection(ApiCollection.Name)]
public class IdempotencySpecs(KraudApp app)
{
    private sealed record Answer(int Status, string Body, bool Replayed)
    {
        public JsonElement Json => JsonDocument.Parse(Body).RootElement;

        public string Code => Json.GetProperty("errors")[0].GetProperty("extensions").GetProperty("code").GetString()!;
    }

    private static string Body(string query, object? variables = null) => JsonSerializer.Serialize(new { query, variables });

    private static string IssueToken(string name) =>
        Body("mutation($n: String!) { createApiToken(input: {role: MEMBER, name: $n}) { id token } }", new { n = name });

    private async Task<Answer> PostAsync(string token, string body, string? key)
    {
        var result = await app.Host.Scenario(s =>
        {
            s.Post.Url("/graphql");
            s.Body.TextIs(body);
            s.WithRequestHeader("Content-Type", "application/json");
            s.WithRequestHeader("Authorization", $"Bearer {token}");
            if (key is not null) s.WithRequestHeader(IdempotentMutations.Header, key);
            s.IgnoreStatusCode();
        });
        var headers = result.Context.Response.Headers;
        return new Answer(result.Context.Response.StatusCode, await result.ReadAsTextAsync(), headers[IdempotentMutations.ReplayedHeader] == "true");
    }

    private async Task<int> TokensOf(TenantScope tenant, string name)
    {
        await using var session = app.Store.QuerySession();
        return await session.Query<ApiTokenView>().CountAsync(t => t.TenantId == tenant.Id && t.Name == name);
    }

    [Fact]
    public async Task a_createPod_retried_with_the_same_key_and_body_gets_the_first_answer_and_appends_nothing()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var key = Guid.NewGuid().ToString();
        var body = Body("mutation { createPod(input: {name: \"once\", image: \"nginx:1.27\", cpu: 1, memoryMiB: 128}) { id name version } }");

        var first = await PostAsync(tenant.Token, body, key);
        Assert.Equal(200, first.Status);
        var podId = first.Json.GetProperty("data").GetProperty("createPod").GetProperty("id").GetString()!;
        var eventsAfterFirst = (await app.EventsOf(Guid.Parse(podId))).Count;
        try
        {
            var retry = await PostAsync(tenant.Token, body, key);

            Assert.True(retry.Replayed);
            Assert.Equal((first.Status, first.Body), (retry.Status, retry.Body));
            await using var session = app.Store.QuerySession();
            Assert.Equal(1, await session.Query<PodView>().CountAsync(p => p.TenantId == tenant.Id));
            Assert.Equal(eventsAfterFirst, (await app.EventsOf(Guid.Parse(podId))).Count);
        }
        finally
        {
            await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = podId });
        }
    }

    [Fact]
    public async Task the_same_key_with_another_body_is_refused_with_CONFLICT_and_appends_nothing()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var key = Guid.NewGuid().ToString();
        Assert.Equal(200, (await PostAsync(tenant.Token, IssueToken("first"), key)).Status);

        var other = await PostAsync(tenant.Token, IssueToken("second"), key);

        Assert.Equal((409, "CONFLICT"), (other.Status, other.Code));
        Assert.Contains("another request", other.Json.GetProperty("errors")[0].GetProperty("message").GetString());
        Assert.Equal(0, await TokensOf(tenant, "second"));
    }

    [Fact]
    public async Task a_mutation_without_a_key_runs_every_time_it_is_sent()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var body = IssueToken("unkeyed");

        var first = await PostAsync(tenant.Token, body, key: null);
        var second = await PostAsync(tenant.Token, body, key: null);

        Assert.NotEqual(first.Body, second.Body);
        Assert.Equal(2, await TokensOf(tenant, "unkeyed"));
    }

    [Fact]
    public async Task keys_belong_to_their_tenant_so_two_tenants_may_use_the_same_key()
    {
        var (a, b) = (await TenantScope.CreateAsync(app), await TenantScope.CreateAsync(app));
        var key = Guid.NewGuid().ToString();
        var body = IssueToken("shared-key");

        var ofA = await PostAsync(a.Token, body, key);
        var ofB = await PostAsync(b.Token, body, key);

        Assert.False(ofB.Replayed);
        Assert.NotEqual(ofA.Body, ofB.Body);
        Assert.Equal((1, 1), (await TokensOf(a, "shared-key"), await TokensOf(b, "shared-key")));
    }

    [Fact]
    public async Task concurrent_attempts_with_one_key_run_the_mutation_once_and_all_get_its_answer()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var key = Guid.NewGuid().ToString();
        var body = IssueToken("raced");

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PostAsync(tenant.Token, body, key)));

        Assert.All(answers, a => Assert.Equal(200, a.Status));
        Assert.Single(answers.Select(a => a.Body).Distinct());
        Assert.Equal(7, answers.Count(a => a.Replayed));
        Assert.Equal(1, await TokensOf(tenant, "raced"));
    }

    [Fact]
    public async Task a_key_whose_attempt_stopped_renewing_its_lease_is_taken_over_by_the_retry()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var key = Guid.NewGuid().ToString();
        var body = IssueToken("orphaned");
        // What a node that died while running the request leaves: a claim, no answer, a lease that ran out.
        var now = DateTimeOffset.UtcNow;
        await using (var session = app.Store.LightweightSession())
        {
            session.Insert(new IdempotencyRecord
            {
                Id = $"{tenant.Id}/{Sha256(key)}", Scope = tenant.Id.ToString(), RequestSha256 = Sha256(body), CreatedAt = now.AddSeconds(-30),
                ExpiresAt = now.AddHours(23), LeaseUntil = now.AddSeconds(-5), Holder = "a node that died",
            });
            await session.SaveChangesAsync();
        }

        var retry = await PostAsync(tenant.Token, body, key);

        Assert.Equal(200, retry.Status);
        Assert.False(retry.Replayed);
        Assert.Equal(1, await TokensOf(tenant, "orphaned"));
        Assert.True((await PostAsync(tenant.Token, body, key)).Replayed);
    }

    [Fact]
    public async Task the_stored_answer_does_not_hold_the_answer_in_clear()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var key = Guid.NewGuid().ToString();
        var answer = await PostAsync(tenant.Token, IssueToken("sealed"), key);
        var secret = answer.Json.GetProperty("data").GetProperty("createApiToken").GetProperty("token").GetString()!;

        await using var session = app.Store.QuerySession();
        var stored = await session.Query<IdempotencyRecord>().SingleAsync(r => r.Scope == tenant.Id.ToString());

        Assert.DoesNotContain(key, stored.Id);
        Assert.DoesNotContain(secret, stored.Body);
        Assert.DoesNotContain(secret, Encoding.UTF8.GetString(Convert.FromBase64String(stored.Body!)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("key with spaces")]
    [InlineData("ключ")]
    public async Task a_key_that_is_not_1_to_255_visible_ascii_characters_is_refused_with_VALIDATION(string key)
    {
        var tenant = await TenantScope.CreateAsync(app);

        var answer = await PostAsync(tenant.Token, IssueToken("bad-key"), key);

        Assert.Equal((400, "VALIDATION"), (answer.Status, answer.Code));
        Assert.Equal(0, await TokensOf(tenant, "bad-key"));
    }

    [Fact]
    public async Task a_key_longer_than_255_characters_is_refused_with_VALIDATION()
    {
        var tenant = await TenantScope.CreateAsync(app);

        var answer = await PostAsync(tenant.Token, IssueToken("long-key"), new string('k', 256));

        Assert.Equal((400, "VALIDATION"), (answer.Status, answer.Code));
    }

    [Fact]
    public async Task a_query_sent_with_a_key_is_answered_as_always_and_not_remembered()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var body = Body("{ me { role } }");

        var answer = await PostAsync(tenant.Token, body, Guid.NewGuid().ToString());

        Assert.Equal(200, answer.Status);
        Assert.False(answer.Replayed);
        await using var session = app.Store.QuerySession();
        Assert.Equal(0, await session.Query<IdempotencyRecord>().CountAsync(r => r.Scope == tenant.Id.ToString()));
    }

    [Fact]
    public void ids_derived_from_a_key_are_the_same_on_every_attempt_and_differ_between_keys()
    {
        var (first, retry, other) = (new RequestIds("t/key-1"), new RequestIds("t/key-1"), new RequestIds("t/key-2"));

        var ids = (first.Next(), first.Next());

        Assert.Equal(ids, (retry.Next(), retry.Next()));
        Assert.NotEqual(ids.Item1, ids.Item2);
        Assert.NotEqual(ids.Item1, other.Next());
        Assert.NotEqual(new RequestIds(null).Next(), new RequestIds(null).Next());
    }

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
