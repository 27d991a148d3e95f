using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Api;

public sealed record TenantRef(string Id, string Name);

public sealed record Principal(string TokenId, string Role, TenantRef? Tenant);

public sealed record Tenant(string Id, string Name, DateTime CreatedAt);

public sealed record ApiTokenSecret(string Id, string Token, string Role);

public static class AccessApi
{
    public static readonly Operation<Principal> Me = new("me", "query Me { me { tokenId role tenant { id name } } }");

    public static readonly Operation<IReadOnlyList<Tenant>> Tenants = new("tenants", "query Tenants { tenants { id name createdAt } }");

    public static readonly Operation<Tenant> CreateTenant = new("createTenant", """
        mutation CreateTenant($name: String!) { createTenant(input: { name: $name }) { id name createdAt } }
        """);

    public static readonly Operation<ApiTokenSecret> CreateToken = new("createApiToken", """
        mutation CreateApiToken($input: CreateApiTokenInput!) { createApiToken(input: $input) { id token role } }
        """);

    public static readonly Operation<bool> RevokeToken = new("revokeApiToken", "mutation RevokeApiToken($id: ID!) { revokeApiToken(id: $id) }");
}
