using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Console;

/// <summary>A tenant of a test's own with an ADMIN token, set up over the console fixture's real HTTP listener.</summary>
public sealed record ConsoleTenant(ConsoleApp App, string Id, string Name, string Token)
{
    public static async Task<ConsoleTenant> CreateAsync(ConsoleApp app, string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..20];
        var id = (await app.AsOperator("mutation($n: String!) { createTenant(input: {name: $n}) { id } }", new { n = name })).ShouldSucceed()
            .Data.GetProperty("createTenant").GetProperty("id").GetString()!;
        var token = (await app.AsOperator("mutation($t: ID!) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"console admin\"}) { token } }",
            new { t = id })).ShouldSucceed().Data.GetProperty("createApiToken").GetProperty("token").GetString()!;
        return new ConsoleTenant(app, id, name, token);
    }

    public Task<GqlResponse> Gql(string query, object? variables = null) => App.GraphQL(Token, query, variables);

    public async Task<string> TokenAsync(string role) =>
        (await Gql("mutation($r: Role!) { createApiToken(input: {role: $r, name: \"console extra\"}) { token } }", new { r = role })).ShouldSucceed()
        .Data.GetProperty("createApiToken").GetProperty("token").GetString()!;

    public async Task<JsonElement> CreatePodAsync(string name, int replicas = 1, string image = "nginx:1.27", string? zone = null) =>
        (await Gql($"mutation($in: CreatePodInput!) {{ createPod(input: $in) {{ {Pods.Fields} }} }}",
            new { @in = new { name, image, cpu = 1, memoryMiB = 256, replicas, zone } })).ShouldSucceed().Data.GetProperty("createPod");

    public async Task<JsonElement> PodAsync(string id) =>
        (await Gql($"query($id: ID!) {{ pod(id: $id) {{ {Pods.Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("pod");

    public Task<JsonElement> WaitForPodAsync(string id, Func<JsonElement, bool> done, string what, int seconds = 60) =>
        Eventually.Get(() => PodAsync(id), done, TimeSpan.FromSeconds(seconds), what);
}
