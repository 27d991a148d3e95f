using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class TenantIsolationSpecs(KraudApp app)
{
    [Fact]
    public async Task another_tenant_can_neither_read_nor_change_a_tenants_pods()
    {
        var a = await TenantScope.CreateAsync(app, "iso-a");
        var b = await TenantScope.CreateAsync(app, "iso-b");
        var pod = await a.CreatePodAsync("private", replicas: 1);
        await a.WaitForPodAsync(pod.Id(), "RUNNING");
        var before = await a.EventCountAsync();

        Assert.Null(await b.PodAsync(pod.Id()));
        var asOf = (await b.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { id } }",
            new { id = pod.Id(), t = DateTime.UtcNow })).ShouldSucceed();
        Assert.Equal(JsonValueKind.Null, asOf.Data.GetProperty("pod").ValueKind);
        var list = (await b.Gql("{ pods { totalCount nodes { id } } }")).ShouldSucceed().Data.GetProperty("pods");
        Assert.Equal(0, list.GetProperty("totalCount").GetInt32());

        foreach (var mutation in new[]
                 {
                     "mutation($id: ID!) { deletePod(id: $id) { id } }",
                     "mutation($id: ID!) { scalePod(id: $id, replicas: 3) { id } }",
                     "mutation($id: ID!) { restartPod(id: $id) { id } }",
                 })
            (await b.Gql(mutation, new { id = pod.Id() })).ShouldFailWith("NOT_FOUND");

        var tenants = (await b.Gql("{ tenants { id } }")).ShouldSucceed().Data.GetProperty("tenants").EnumerateArray().Select(t => t.Id()).ToList();
        Assert.Equal([b.Id.ToString()], tenants);
        var other = (await b.Gql("query($id: ID!) { tenant(id: $id) { id } }", new { id = a.Id })).ShouldSucceed();
        Assert.Equal(JsonValueKind.Null, other.Data.GetProperty("tenant").ValueKind);
        (await b.Gql("query($t: ID) { auditLog(tenantId: $t) { totalCount } }", new { t = a.Id })).ShouldFailWith("FORBIDDEN");
        var ownLog = (await b.Gql("{ auditLog(first: 1000) { nodes { tenantId resourceId } } }")).ShouldSucceed();
        Assert.All(ownLog.Data.GetProperty("auditLog").GetProperty("nodes").EnumerateArray(),
            e => Assert.Equal(b.Id.ToString(), e.GetProperty("tenantId").GetString()));

        Assert.Equal("RUNNING", (await a.PodAsync(pod.Id()))!.Value.State());
        Assert.Equal(before, await a.EventCountAsync());
    }

    [Fact]
    public async Task a_tenant_admin_cannot_issue_tokens_for_another_tenant()
    {
        var a = await TenantScope.CreateAsync(app, "iso-c");
        var b = await TenantScope.CreateAsync(app, "iso-d");
        (await b.Gql("mutation($t: ID) { createApiToken(input: {tenantId: $t, role: ADMIN, name: \"x\"}) { token } }", new { t = a.Id }))
            .ShouldFailWith("FORBIDDEN");
    }

    [Fact]
    public async Task tenant_tokens_see_no_hosts()
    {
        var a = await TenantScope.CreateAsync(app, "iso-e");
        (await a.Gql("{ hosts { id } }")).ShouldFailWith("FORBIDDEN");
        (await a.Gql("{ zones { id } }")).ShouldFailWith("FORBIDDEN");
    }
}
