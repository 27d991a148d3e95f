using System.Text.Json;
using Alba;

namespace Kraud.Tests.Infrastructure;

/// <summary>One GraphQL response: data, or errors with their contract codes.</summary>
public sealed record GqlResponse(JsonElement Root, int Status, string Body)
{
    public JsonElement Data => Root.GetProperty("data");

    public IReadOnlyList<string> ErrorCodes => Root.TryGetProperty("errors", out var errors)
        ? errors.EnumerateArray().Select(e => e.TryGetProperty("extensions", out var x) && x.TryGetProperty("code", out var c) ? c.GetString()! : "").ToList()
        : [];

    public string FirstErrorMessage => Root.GetProperty("errors")[0].GetProperty("message").GetString()!;

    public GqlResponse ShouldSucceed()
    {
        Assert.True(!Root.TryGetProperty("errors", out _), $"Expected no GraphQL errors, got: {Body}");
        return this;
    }

    public GqlResponse ShouldFailWith(string code)
    {
        Assert.True(ErrorCodes.Contains(code), $"Expected error code {code}, got: {Body}");
        return this;
    }

    public override string ToString() => Body;
}

public static class GraphQLClient
{
    public static async Task<GqlResponse> GraphQL(this IAlbaHost host, string? token, string query, object? variables = null, int? status = 200)
    {
        var result = await host.Scenario(s =>
        {
            s.Post.Json(new { query, variables }).ToUrl("/graphql");
            s.WithRequestHeader("Accept", "application/graphql-response+json");
            if (token is not null) s.WithRequestHeader("Authorization", $"Bearer {token}");
            if (status is { } expected) s.StatusCodeShouldBe(expected);
            else s.IgnoreStatusCode();
        });
        var body = await result.ReadAsTextAsync();
        KeyMaterial.AssertAbsent(host, body);
        return new GqlResponse(JsonDocument.Parse(body).RootElement.Clone(), result.Context.Response.StatusCode, body);
    }

    public static Task<GqlResponse> AsOperator(this KraudApp app, string query, object? variables = null) =>
        app.Host.GraphQL(KraudApp.OperatorToken, query, variables);

    /// <summary>Every pod a caller sees, with the given fields, read page by page (a page holds at most 100).</summary>
    public static async Task<List<JsonElement>> AllPodsAsync(Func<string, object?, Task<GqlResponse>> gql, string fields)
    {
        var pods = new List<JsonElement>();
        string? after = null;
        do
        {
            var page = (await gql($"query($after: String) {{ pods(first: 100, after: $after) {{ nodes {{ {fields} }} pageInfo {{ hasNextPage endCursor }} }} }}",
                new { after })).ShouldSucceed().Data.GetProperty("pods");
            pods.AddRange(page.GetProperty("nodes").EnumerateArray());
            var info = page.GetProperty("pageInfo");
            after = info.GetProperty("hasNextPage").GetBoolean() ? info.GetProperty("endCursor").GetString() : null;
        } while (after is not null);
        return pods;
    }
}
