using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>
/// Streams.FetchForWritingAsync and Streams.Append, the one way commands write a decider's stream: the state is the
/// decider's own fold, and Marten refuses the second of two writers that fetched the same version.
/// </summary>
[Collection(ApiCollection.Name)]
public class StreamWritingSpecs(KraudApp app)
{
    private static readonly Principal Tester = Principal.System("stream-writing-specs");

    [Fact]
    public async Task a_stream_fetched_for_writing_is_the_deciders_fold_at_the_streams_version()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = Guid.Parse((await tenant.CreatePodAsync("fetched", replicas: 2)).Id());
        await tenant.WaitForPodAsync(pod.ToString(), "RUNNING");

        await using var session = app.Store.LightweightSession();
        var loaded = await Streams.FetchForWritingAsync<Pod>(session, pod);
        var view = await session.LoadAsync<PodView>(pod);

        Assert.Equal(view!.Version, loaded.Version);
        Assert.Equal(2, loaded.State.Replicas);
        Assert.Equal(view.Pod.Instances.Select(i => i.VmId).Order(), loaded.State.Instances.Select(i => i.VmId).Order());
    }

    [Fact]
    public async Task of_two_writers_that_fetched_the_same_version_the_second_commit_fails_and_nothing_of_it_is_kept()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = Guid.Parse((await tenant.CreatePodAsync("contended")).Id());
        await tenant.WaitForPodAsync(pod.ToString(), "RUNNING");

        await using var first = app.Store.LightweightSession();
        await using var second = app.Store.LightweightSession();
        var a = await Streams.FetchForWritingAsync<Pod>(first, pod);
        var b = await Streams.FetchForWritingAsync<Pod>(second, pod);
        Assert.Equal(a.Version, b.Version);
        var stamp = new AuditStamp(Tester.Actor, "SYSTEM", tenant.Id, nameof(ScalePod), Guid.NewGuid().ToString(), null, null, null);
        var kept = PodDecider.Decide(new ScalePod(pod, 2, Tester, DateTimeOffset.UtcNow), a.State);
        Streams.Append(a, kept, stamp);
        Streams.Append(b, PodDecider.Decide(new ScalePod(pod, 3, Tester, DateTimeOffset.UtcNow), b.State), stamp);

        await first.SaveChangesAsync();
        await Assert.ThrowsAnyAsync<JasperFx.ConcurrencyException>(() => second.SaveChangesAsync());

        await using var query = app.Store.QuerySession();
        Assert.Equal(2, (await query.LoadAsync<PodView>(pod))!.Pod.Replicas);
        Assert.Equal(a.Version + kept.Count, (await Streams.LoadAsync<Pod>(query, pod)).Version);
    }

    [Fact]
    public async Task a_stream_loaded_only_for_reading_cannot_be_appended_to()
    {
        await using var session = app.Store.LightweightSession();
        var loaded = await Streams.LoadAsync<Pod>(session, Guid.NewGuid());
        var stamp = new AuditStamp(Tester.Actor, "SYSTEM", null, nameof(ScalePod), Guid.NewGuid().ToString(), null, null, null);
        Assert.Throws<InvalidOperationException>(() => Streams.Append(loaded, [new object()], stamp));
    }
}
