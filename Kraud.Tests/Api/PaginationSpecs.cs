using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class PaginationSpecs(KraudApp app)
{
    [Fact]
    public async Task pods_are_paged_with_cursors_without_gaps_or_repeats()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = new List<string>();
        for (var i = 0; i < 5; i++) created.Add((await tenant.CreatePodAsync($"p{i}")).Id());

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        while (true)
        {
            var page = (await tenant.Gql("query($a: String) { pods(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } }",
                new { a = after })).ShouldSucceed().Data.GetProperty("pods");
            Assert.Equal(5, page.GetProperty("totalCount").GetInt32());
            seen.AddRange(page.GetProperty("nodes").EnumerateArray().Select(n => n.Id()));
            pages++;
            if (!page.GetProperty("pageInfo").GetProperty("hasNextPage").GetBoolean()) break;
            after = page.GetProperty("pageInfo").GetProperty("endCursor").GetString();
        }
        Assert.Equal(3, pages);
        Assert.Equal(created, seen);
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
