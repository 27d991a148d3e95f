using System.Text.Json;

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
        var scope = new TenantScope(app, Guid.Parse(id), name, token.Data.GetProperty("createApiToken").GetProperty("token").GetString()!);
        app.Track(scope);
        return scope;
    }

    /// <summary>
    /// Deletes the tenant's apps, clusters and pods and waits until every pod stopped: what a spec leaves running takes the
    /// room of the collection's shared fleet that later specs' placements (and the zones' N+2 reserve) count on.
    /// </summary>
    public async Task RemoveWorkloadsAsync()
    {
        var apps = (await Gql("{ appInstances { id state } }")).ShouldSucceed().Data.GetProperty("appInstances").EnumerateArray();
        foreach (var app in apps.Where(a => a.State() is not ("DELETING" or "DELETED")))
            (await Gql("mutation($id: ID!) { deleteApp(id: $id) { id } }", new { id = app.Id() })).ShouldSucceed();
        var clusters = (await Gql("{ kubernetesClusters { id state } }")).ShouldSucceed().Data.GetProperty("kubernetesClusters").EnumerateArray();
        foreach (var cluster in clusters.Where(c => c.State() is not ("DELETING" or "DELETED")))
            (await Gql("mutation($id: ID!) { deleteKubernetesCluster(id: $id) { id } }", new { id = cluster.Id() })).ShouldSucceed();

        var live = (await GraphQLClient.AllPodsAsync((query, variables) => Gql(query, variables), "id state owner { id }")).Where(p => p.State() != "STOPPED").ToList();
        // A STOPPING pod is being deleted already (docker rm -f); an owned one goes with its app or cluster.
        foreach (var pod in live.Where(p => p.State() != "STOPPING" && p.GetProperty("owner").ValueKind == JsonValueKind.Null))
            (await Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        foreach (var pod in live) await this.WaitForPodAsync(pod.Id(), "STOPPED", seconds: 60);
    }

    public Task<GqlResponse> Gql(string query, object? variables = null, int? status = 200) => App.Host.GraphQL(Token, query, variables, status);

    public async Task<string> TokenAsync(string role)
    {
        var r = (await Gql("mutation($r: Role!) { createApiToken(input: {role: $r, name: \"extra\"}) { token } }", new { r = role })).ShouldSucceed();
        return r.Data.GetProperty("createApiToken").GetProperty("token").GetString()!;
    }
}
