using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Kraud.Tests.Infrastructure;
using Marten;

namespace Kraud.Tests.Api;

/// <summary>
/// createPod under concurrency (issue 17): independent pods of one namespace never answer CONFLICT because of each
/// other, an error means nothing was created, and a retried create answers its own pod.
/// </summary>
[Collection(ApiCollection.Name)]
public class ConcurrentCreateSpecs(KraudApp app) : IAsyncLifetime
{
    // 64 pods of the shared fleet: left running they would take the room later specs' placements count on.
    private readonly SpecTenants _tenants = new(app);

    public Task InitializeAsync() => _tenants.InitializeAsync();

    public Task DisposeAsync() => _tenants.DisposeAsync();

    private const string Create = "mutation($in: CreatePodInput!) { createPod(input: $in) { id name namespace state version } }";

    [Fact]
    public async Task sixty_four_concurrent_creates_in_one_new_namespace_answer_sixty_four_pods_and_create_exactly_those()
    {
        var tenant = await _tenants.NewAsync();
        var answers = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(() => tenant.Gql(Create,
            new { @in = new { name = $"burst-{i:00}", @namespace = "burst", image = "nginx:1.27", cpu = 1, memoryMiB = 64 } }))));

        Assert.All(answers, a => Assert.Empty(a.ErrorCodes));
        var ids = answers.Select(a => Guid.Parse(a.Data.GetProperty("createPod").Id())).ToHashSet();
        Assert.Equal(64, ids.Count);

        // Exactly those pods exist: none more (an answer with an error that created one anyway), none less.
        await using (var session = app.Store.QuerySession())
        {
            var views = await session.Query<PodView>().Where(p => p.TenantId == tenant.Id).ToListAsync();
            Assert.Equal(ids.Order(), views.Select(v => v.Id).Order());
            Assert.Equal(64, views.Select(v => v.Name).Distinct().Count());
            Assert.All(views, v => Assert.Equal("burst", v.Namespace));
            var requested = await session.Events.QueryRawEventDataOnly<PodRequested>().Where(e => e.TenantId == tenant.Id).CountAsync();
            Assert.Equal(64, requested);
        }

        // Every one is placed and runs, each with an address of its own in the namespace's overlay.
        var running = await Task.WhenAll(ids.Select(id => tenant.WaitForPodAsync(id.ToString(), "RUNNING", seconds: 90)));
        var addresses = running.SelectMany(p => p.Instances()).Select(i => i.GetProperty("ip4").GetString()).ToList();
        Assert.Equal(64, addresses.Count);
        Assert.Equal(64, addresses.Distinct().Count());
    }

    [Fact]
    public async Task a_create_whose_commit_answer_is_lost_is_retried_and_answers_the_same_pod()
    {
        var tenant = await _tenants.NewAsync();
        var name = $"lost-{Guid.NewGuid():N}"[..20];
        var before = app.CommitFaults.Fired;
        app.CommitFaults.FailAfterCommitOfPod(name);

        var answer = (await tenant.Gql(Create, new { @in = new { name, image = "nginx:1.27", cpu = 1, memoryMiB = 64 } })).ShouldSucceed();

        Assert.Equal(before + 1, app.CommitFaults.Fired);
        var pod = answer.Data.GetProperty("createPod");
        Assert.Equal(name, pod.GetProperty("name").GetString());
        Assert.Equal(2, pod.GetProperty("version").GetInt32()); // PodRequested, PodImageResolved
        var id = Guid.Parse(pod.Id());
        await using (var session = app.Store.QuerySession())
        {
            var views = await session.Query<PodView>().Where(p => p.TenantId == tenant.Id).ToListAsync();
            Assert.Equal(id, Assert.Single(views).Id);
            // The retry appended nothing: the first attempt's events are the pod's only ones.
            Assert.Single(await session.Events.FetchStreamAsync(id), e => e.Data is PodRequested);
        }
        await tenant.WaitForPodAsync(id.ToString(), "RUNNING");
    }
}
