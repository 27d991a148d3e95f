namespace Kraud.Tests.Infrastructure;

/// <summary>A tenant of a test's own, with an ADMIN token: tests never see each other's resources.</summary>
public sealed record TenantScope(KraudApp App, Guid Id, string Name, string Token)
{
    public static async Task<TenantScope> CreateAsync(KraudApp app, string prefix = "t")
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..20];
        var tenant = (await app.AsOperator("mutation($n: String!) { createTenant(input: {name: $n}) { id } }", new { n = name })).ShouldSucceed();
        var id = tenant.Data.GetProperty("createTenant").GetProperty("id").GetString()!;
        var token = (await app.AsOperator(
            "mutation($t: ID!) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"test admin\"}) { token } }", new { t = id })).ShouldSucceed();
        return new TenantScope(app, Guid.Parse(id), name, token.Data.GetProperty("createApiToken").GetProperty("token").GetString()!);
    }

    public Task<GqlResponse> Gql(string query, object? variables = null, int? status = 200) => App.Host.GraphQL(Token, query, variables, status);

    public async Task<string> TokenAsync(string role)
    {
        var r = (await Gql("mutation($r: Role!) { createApiToken(input: {role: $r, name: \"extra\"}) { token } }", new { r = role })).ShouldSucceed();
        return r.Data.GetProperty("createApiToken").GetProperty("token").GetString()!;
    }
}
