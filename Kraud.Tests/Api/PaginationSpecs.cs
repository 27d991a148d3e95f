using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class PaginationSpecs(KraudApp app)
{
    /// <summary>Follows the cursors of a connection two at a time to its end: every id in order, and how many pages it took.</summary>
    private static async Task<(List<string> Ids, int Pages)> PageThroughAsync(TenantScope tenant, string connection, int expectedTotal)
    {
        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        while (true)
        {
            var page = (await tenant.Gql($"query($a: String) {{ {connection}(first: 2, after: $a) {{ totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ id }} }} }}",
                new { a = after })).ShouldSucceed().Data.GetProperty(connection);
            Assert.Equal(expectedTotal, page.GetProperty("totalCount").GetInt32());
            seen.AddRange(page.GetProperty("nodes").EnumerateArray().Select(n => n.Id()));
            pages++;
            if (!page.GetProperty("pageInfo").GetProperty("hasNextPage").GetBoolean()) return (seen, pages);
            after = page.GetProperty("pageInfo").GetProperty("endCursor").GetString();
        }
    }

    [Fact]
    public async Task pods_are_paged_with_cursors_without_gaps_or_repeats()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = new List<string>();
        for (var i = 0; i < 5; i++) created.Add((await tenant.CreatePodAsync($"p{i}")).Id());
        var (ids, pages) = await PageThroughAsync(tenant, "pods", 5);
        Assert.Equal(created, ids);
        Assert.Equal(3, pages);
    }

    [Fact]
    public async Task volumes_are_paged_in_creation_order_the_same_way()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = new List<string>();
        for (var i = 0; i < 3; i++) created.Add((await tenant.CreateVolumeAsync($"v{i}", "BLOCK", 1)).Id());
        var (ids, pages) = await PageThroughAsync(tenant, "volumes", 3);
        Assert.Equal(created, ids);
        Assert.Equal(2, pages);
        (await tenant.Gql("{ volumes(after: \"garbage!\") { totalCount } }")).ShouldFailWith("VALIDATION");
        foreach (var id in created) await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id });
    }

    [Fact]
    public async Task pods_can_be_filtered_by_namespace()
    {
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql("mutation { createPod(input: {name: \"a\", namespace: \"blue\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldSucceed();
        (await tenant.Gql("mutation { createPod(input: {name: \"b\", namespace: \"green\", image: \"nginx\", cpu: 1, memoryMiB: 128}) { id } }")).ShouldSucceed();
        var blue = (await tenant.Gql("{ pods(namespace: \"blue\") { totalCount nodes { name namespace } } }")).ShouldSucceed().Data.GetProperty("pods");
        Assert.Equal(1, blue.GetProperty("totalCount").GetInt32());
        Assert.Equal("blue", blue.GetProperty("nodes")[0].GetProperty("namespace").GetString());
    }

    [Fact]
    public async Task a_cursor_the_api_did_not_hand_out_is_a_validation_error()
    {
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql("{ pods(after: \"garbage!\") { totalCount } }")).ShouldFailWith("VALIDATION");
        (await tenant.Gql("{ pods(first: 0) { totalCount } }")).ShouldFailWith("VALIDATION");
    }
}
