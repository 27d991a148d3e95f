using System.Text.Json;
using Alba;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>GraphQL over HTTP: what a client that gets it wrong sees. Never a 500, always an error with a code.</summary>
[Collection(ApiCollection.Name)]
public class GraphQLHttpSpecs(KraudApp app)
{
    private async Task<(int Status, JsonElement Body, IScenarioResult Result)> Raw(Action<Scenario> configure)
    {
        var result = await app.Host.Scenario(s =>
        {
            s.WithRequestHeader("Authorization", $"Bearer {KraudApp.OperatorToken}");
            configure(s);
            s.IgnoreStatusCode();
        });
        var text = await result.ReadAsTextAsync();
        return (result.Context.Response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), result);
    }

    private static string Code(JsonElement body) => body.GetProperty("errors")[0].GetProperty("extensions").GetProperty("code").GetString()!;

    [Fact]
    public async Task malformed_json_is_400_with_a_clear_message()
    {
        var (status, body, _) = await Raw(s =>
        {
            s.Post.Url("/graphql");
            s.Body.TextIs("{\"query\": ");
            s.WithRequestHeader("Content-Type", "application/json");
        });
        Assert.Equal(400, status);
        Assert.Equal("VALIDATION", Code(body));
        Assert.Contains("not valid JSON", body.GetProperty("errors")[0].GetProperty("message").GetString());
    }

    [Fact]
    public async Task a_body_that_is_not_json_is_415()
    {
        var (status, body, _) = await Raw(s =>
        {
            s.Post.Url("/graphql");
            s.Body.TextIs("{ me { role } }");
            s.WithRequestHeader("Content-Type", "text/plain");
        });
        Assert.Equal(415, status);
        Assert.Equal("VALIDATION", Code(body));
    }

    [Fact]
    public async Task an_unknown_field_is_400_and_names_the_field()
    {
        var r = await app.Host.GraphQL(KraudApp.OperatorToken, "{ me { favouriteColour } }", status: 400);
        Assert.Contains("favouriteColour", r.FirstErrorMessage);
    }

    [Fact]
    public async Task an_argument_of_the_wrong_type_is_400()
    {
        var r = await app.Host.GraphQL(KraudApp.OperatorToken, "{ pods(first: \"ten\") { totalCount } }", status: 400);
        Assert.NotEmpty(r.ErrorCodes);
    }

    [Fact]
    public async Task a_variable_of_the_wrong_type_is_400()
    {
        await app.Host.GraphQL(KraudApp.OperatorToken, "query($n: Int) { pods(first: $n) { totalCount } }", new { n = "many" }, status: 400);
    }

    [Fact]
    public async Task a_request_without_a_query_is_400()
    {
        var r = await app.Host.GraphQL(KraudApp.OperatorToken, "", status: 400);
        r.ShouldFailWith("VALIDATION");
    }

    [Fact]
    public async Task a_query_over_get_works_and_answers_as_graphql_response_json()
    {
        var (status, body, result) = await Raw(s => s.Get.Url("/graphql?query=" + Uri.EscapeDataString("{ me { role } }")));
        Assert.Equal(200, status);
        Assert.Equal("OPERATOR", body.GetProperty("data").GetProperty("me").GetProperty("role").GetString());
        Assert.StartsWith("application/graphql-response+json", result.Context.Response.ContentType);
    }

    [Fact]
    public async Task a_mutation_over_get_is_405_with_allow_post()
    {
        var (status, body, result) = await Raw(s =>
            s.Get.Url("/graphql?query=" + Uri.EscapeDataString("mutation { createTenant(input: {name: \"via-get\"}) { id } }")));
        Assert.Equal(405, status);
        Assert.Equal("POST", result.Context.Response.Headers.Allow.ToString());
        Assert.Equal("VALIDATION", Code(body));
        var tenants = (await app.AsOperator("{ tenants { name } }")).ShouldSucceed().Data.GetProperty("tenants").EnumerateArray();
        Assert.DoesNotContain(tenants, t => t.GetProperty("name").GetString() == "via-get");
    }

    [Fact]
    public async Task the_correlation_id_of_a_request_is_echoed()
    {
        var (_, _, result) = await Raw(s =>
        {
            s.Post.Json(new { query = "{ me { role } }" }).ToUrl("/graphql");
            s.WithRequestHeader("X-Correlation-Id", "incident-0312");
        });
        Assert.Equal("incident-0312", result.Context.Response.Headers["X-Correlation-Id"].ToString());
    }
}
