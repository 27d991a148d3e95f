using System.Globalization;
using System.Text.Json;
using JasperFx.Events;
using Kraud.Api.Audit;
using Kraud.Api.Common;
using Kraud.Domain.Kubernetes;
using Kraud.Domain.Pods;
using Kraud.Projections.Kubernetes;
using Kraud.Projections.Pods;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Kraud.Tests.Api;

/// <summary>A removal cuts the log for every later read: an application of its own keeps that away from the other replay specs.</summary>
public sealed class ArchiveRemovalApp : KraudApp
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        // A checkpoint every few events, and one for whatever waits a second: a removal ends at a checkpoint.
        ("Replay:CheckpointEveryEvents", "10"),
        ("Replay:CheckpointEveryMinutes", "0.01"),
    ];
}

[CollectionDefinition(Name)]
public sealed class ArchiveRemovalCollection : ICollectionFixture<ArchiveRemovalApp>
{
    public const string Name = "Kraud archive removal";
}

/// <summary>
/// Archived events leave the log: ended streams go, live ones shrink to a snapshot at the cut; the chain stays proven, live
/// resources keep working, earlier reads need the archive.
/// </summary>
[Collection(ArchiveRemovalCollection.Name)]
public sealed class ArchiveRemovalSpecs(ArchiveRemovalApp app) : IDisposable
{
    private readonly KraudCli _cli = new();

    private sealed record Removal(TenantScope Tenant, string Ended, string Live, DateTime Early, JsonElement Archive)
    {
        public string File => Archive.GetProperty("file").GetString()!;
    }

    /// <summary>
    /// A pod created and deleted (its stream ends) and one created and running, both in an archive written with
    /// removeFromLog once a checkpoint covers them.
    /// </summary>
    private async Task<Removal> ArchiveAndRemoveAsync()
    {
        var early = DateTime.UtcNow;
        var tenant = await TenantScope.CreateAsync(app);
        var ended = (await tenant.CreatePodAsync("ended")).Id();
        await tenant.WaitForPodAsync(ended, "RUNNING");
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = ended })).ShouldSucceed();
        await tenant.WaitForPodAsync(ended, "STOPPED");
        var live = (await tenant.CreatePodAsync("live")).Id();
        await tenant.WaitForPodAsync(live, "RUNNING");
        var archive = await ArchiveAndRemoveUpToNowAsync(ended, live);
        var events = await app.EventsOf(Guid.Parse(live));
        Assert.True(events.Count > 0 && events[0].Data is Compacted<Pod>, $"live begins with its snapshot: {string.Join(", ", events.Select(e => e.EventTypeName))}; {archive}");
        return new Removal(tenant, ended, live, early, archive);
    }

    [Fact]
    public async Task removing_an_archive_takes_the_events_of_ended_streams_out_of_the_log_and_the_chain_still_proves_itself()
    {
        var removal = await ArchiveAndRemoveAsync();
        Assert.True(removal.Archive.GetProperty("removedEvents").GetInt64() > 0);
        Assert.InRange(removal.Archive.GetProperty("removedUpToSeq").GetInt64(), 1, removal.Archive.GetProperty("toSeq").GetInt64());
        Assert.Empty(await app.EventsOf(Guid.Parse(removal.Ended)));
        // A live stream keeps its stream: its events up to the cut are one snapshot at the last of them, later ones stay.
        var live = await app.EventsOf(Guid.Parse(removal.Live));
        Assert.IsType<Compacted<Pod>>(live[0].Data);
        Assert.True(live[0].Sequence <= removal.Archive.GetProperty("removedUpToSeq").GetInt64(), $"the snapshot stands at the cut or before: {live[0].Sequence}");
        Assert.All(live.Skip(1), e => Assert.True(e.Sequence > removal.Archive.GetProperty("removedUpToSeq").GetInt64(), $"{e.EventTypeName} at {e.Sequence}"));

        // The chain's entries stay, linked and hashed from genesis, and the platform's key still vouches for the archive.
        var verified = (await app.AsOperator("query { verifyAuditChain { valid firstBrokenSeq } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain");
        Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
        var key = Convert.ToBase64String(app.Host.Services.GetRequiredService<AuditSigningKey>().PublicKey);
        Assert.StartsWith("VALID: ", (await _cli.RunAsync("audit", "verify-archive", removal.File, "--key", key)).ShouldSucceed().Stdout);

        // Rebuilt without the removed events, the chain starts at the archive's head and comes out the same.
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var before = await EntriesAsync();
        await RebuildAsync("AuditChain");
        var after = await EntriesAsync();
        Assert.Equal(before, after.Take(before.Count));
        Assert.True((await app.AsOperator("query { verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());

        // The checkpoints rebuild from the cut, and the platform after it is whole.
        await RebuildAsync("PlatformCheckpoints");
        var now = (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id state } } }", new { t = DateTime.UtcNow }))
            .ShouldSucceed().Data.GetProperty("platformAt").GetProperty("pods").EnumerateArray().ToList();
        Assert.Equal("RUNNING", now.Single(p => p.Id() == removal.Live).State());
        Assert.DoesNotContain(now, p => p.Id() == removal.Ended);
    }

    [Fact]
    public async Task a_pod_created_before_the_boundary_still_scales_and_deletes_and_its_compacted_stream_leaves_with_the_next_removal()
    {
        var removal = await ArchiveAndRemoveAsync();
        var scaled = (await removal.Tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 2) { replicas version } }", new { id = removal.Live }))
            .ShouldSucceed().Data.GetProperty("scalePod");
        Assert.Equal(2, scaled.GetProperty("replicas").GetInt32());
        await removal.Tenant.WaitForPodAsync(removal.Live, p => p.Instances().Count(i => i.State() == "RUNNING") == 2,
            TimeSpan.FromSeconds(30), "the pod runs two replicas");
        (await removal.Tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = removal.Live })).ShouldSucceed();
        await removal.Tenant.WaitForPodAsync(removal.Live, "STOPPED");

        // Ended now, the stream that begins with a snapshot is one the next removal takes out whole.
        Assert.IsType<Compacted<Pod>>((await app.EventsOf(Guid.Parse(removal.Live)))[0].Data);
        var next = await ArchiveAndRemoveUpToNowAsync(removal.Live);
        Assert.True(next.GetProperty("removedEvents").GetInt64() > 0, next.ToString());
        Assert.Empty(await app.EventsOf(Guid.Parse(removal.Live)));
    }

    [Fact]
    public async Task reads_before_the_boundary_answer_archive_required_naming_the_archive_and_later_reads_answer()
    {
        var removal = await ArchiveAndRemoveAsync();
        var file = Path.GetFileName(removal.File);
        var removedBefore = removal.Archive.GetProperty("removedBefore").GetDateTime();
        Assert.True(removal.Early < removedBefore);

        void Refused(GqlResponse response) => Assert.True(response.ShouldFailWith("ARCHIVE_REQUIRED").FirstErrorMessage.Contains(file, StringComparison.Ordinal), $"{file} in {response.FirstErrorMessage}");
        Refused(await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { asOf } }", new { t = removal.Early }));
        Refused(await removal.Tenant.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state } }", new { id = removal.Live, t = removal.Early }));
        // The ended pod's stream left the log: even asked of now, its history is in the archive.
        Refused(await removal.Tenant.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state } }", new { id = removal.Ended, t = DateTime.UtcNow }));
        Refused(await removal.Tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { seq } }", new { id = removal.Ended }));
        Refused(await removal.Tenant.Gql("query($id: ID!, $f: DateTime) { timeline(resourceId: $id, from: $f) { seq } }", new { id = removal.Live, f = removal.Early }));
        Refused(await app.AsOperator("query($f: DateTime!, $t: DateTime!) { incident(from: $f, to: $t) { summary } }", new { f = removal.Early, t = DateTime.UtcNow }));

        // Another tenant asking of those ids learns nothing: it gets what it gets for an id it does not know.
        var other = await TenantScope.CreateAsync(app);
        Assert.Equal(JsonValueKind.Null, (await other.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state } }",
            new { id = removal.Ended, t = DateTime.UtcNow })).ShouldSucceed().Data.GetProperty("pod").ValueKind);
        foreach (var id in new[] { removal.Ended, removal.Live })
            Assert.Empty((await other.Gql("query($id: ID!) { timeline(resourceId: $id) { seq } }", new { id })).ShouldSucceed()
                .Data.GetProperty("timeline").EnumerateArray());

        var after = DateTime.UtcNow;
        var platform = (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id state } } }", new { t = after })).ShouldSucceed();
        Assert.Contains(platform.Data.GetProperty("platformAt").GetProperty("pods").EnumerateArray(), p => p.Id() == removal.Live);
        var pod = (await removal.Tenant.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state } }", new { id = removal.Live, t = after }))
            .ShouldSucceed().Data.GetProperty("pod");
        Assert.Equal("RUNNING", pod.State());
        (await removal.Tenant.Gql("query($id: ID!, $f: DateTime) { timeline(resourceId: $id, from: $f) { seq } }", new { id = removal.Live, f = after }))
            .ShouldSucceed();
        (await app.AsOperator("query($f: DateTime!, $t: DateTime!) { incident(from: $f, to: $t) { summary } }", new { f = after, t = DateTime.UtcNow }))
            .ShouldSucceed();
    }

    [Fact]
    public async Task the_timeline_of_a_live_resource_older_than_the_boundary_answers_from_the_boundary_on_and_names_the_archive_of_the_rest()
    {
        var removal = await ArchiveAndRemoveAsync();
        var file = removal.File;
        var removedBefore = removal.Archive.GetProperty("removedBefore").GetDateTime();
        // Something happens to the pod after the boundary: the timeline must answer it.
        (await removal.Tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 2) { version } }", new { id = removal.Live })).ShouldSucceed();
        await removal.Tenant.WaitForPodAsync(removal.Live, p => p.Instances().Count(i => i.State() == "RUNNING") == 2,
            TimeSpan.FromSeconds(30), "the pod runs two replicas");

        const string Timeline = "query($id: ID!) { timeline(resourceId: $id) { seq at streamId type } timelineArchives(resourceId: $id) { file toSeq removedBefore } }";
        var answer = (await removal.Tenant.Gql(Timeline, new { id = removal.Live })).ShouldSucceed();
        var events = answer.Data.GetProperty("timeline").EnumerateArray().ToList();
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.True(e.GetProperty("at").GetDateTime() > removedBefore, $"{e} is after the boundary {removedBefore:O}"));
        Assert.Contains(events, e => e.GetProperty("streamId").GetString() == removal.Live && e.GetProperty("type").GetString() == "pod_scaled");
        // The pod's own first events are still in the log but before the boundary, where the log no longer answers whole.
        Assert.DoesNotContain(events, e => e.GetProperty("type").GetString() == "pod_requested");
        Assert.Equal(file, answer.Data.GetProperty("timelineArchives").EnumerateArray().Single().GetProperty("file").GetString());
        var told = answer.Root.GetProperty("extensions").GetProperty("archived").GetProperty("timeline");
        Assert.Equal(file, told.GetProperty("archives").EnumerateArray().Single().GetString());
        Assert.True(told.GetProperty("answersAfter").GetDateTime() > removedBefore, told.ToString());
        Assert.Contains(file, told.GetProperty("message").GetString()!, StringComparison.Ordinal);

        // Asked from after the boundary, the log answers all of it and no archive is named.
        var after = (await removal.Tenant.Gql("query($id: ID!, $f: DateTime) { timeline(resourceId: $id, from: $f) { type } timelineArchives(resourceId: $id, from: $f) { file } }",
            new { id = removal.Live, f = removedBefore.AddSeconds(1) })).ShouldSucceed();
        Assert.Empty(after.Data.GetProperty("timelineArchives").EnumerateArray());
        Assert.False(after.Root.TryGetProperty("extensions", out var extensions) && extensions.TryGetProperty("archived", out _), after.ToString());
        // The ended pod's events all left: its whole history is in the archive.
        Assert.Equal(file, (await removal.Tenant.Gql("query($id: ID!) { timelineArchives(resourceId: $id) { file } }", new { id = removal.Ended })).ShouldSucceed()
            .Data.GetProperty("timelineArchives").EnumerateArray().Single().GetProperty("file").GetString());

        // Another tenant learns nothing of either id: no events, no archive, no hint.
        var other = await TenantScope.CreateAsync(app);
        foreach (var id in new[] { removal.Ended, removal.Live })
        {
            var theirs = (await other.Gql(Timeline, new { id })).ShouldSucceed();
            Assert.Empty(theirs.Data.GetProperty("timeline").EnumerateArray());
            Assert.Empty(theirs.Data.GetProperty("timelineArchives").EnumerateArray());
            Assert.False(theirs.Root.TryGetProperty("extensions", out var x) && x.TryGetProperty("archived", out _), theirs.ToString());
        }
    }

    [Fact]
    public async Task an_archive_written_earlier_is_removed_on_its_own_and_a_removal_stopped_half_way_goes_on_once_by_an_operator_only()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var ended = (await tenant.CreatePodAsync("later")).Id();
        await tenant.WaitForPodAsync(ended, "RUNNING");
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = ended })).ShouldSucceed();
        await tenant.WaitForPodAsync(ended, "STOPPED");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var last = await ScalarAsync($"select max(seq_id) from kraud.mt_events where stream_id = '{ended}'");
        await Eventually.Until(async () => await ScalarAsync("select coalesce(max(seq), 0) from kraud.replay_checkpoints") >= last, TimeSpan.FromSeconds(30),
            "a checkpoint covers the pod");
        (await app.AsOperator("mutation { signAuditDigest { seq } }")).ShouldSucceed();
        await Task.Delay(10);
        var archive = (await app.AsOperator("mutation($b: DateTime) { archiveEvents(before: $b) { removedUpToSeq removedEvents } }", new { b = DateTime.UtcNow }))
            .ShouldSucceed().Data.GetProperty("archiveEvents");
        Assert.Equal(0, archive.GetProperty("removedUpToSeq").GetInt64());
        Assert.NotEmpty(await app.EventsOf(Guid.Parse(ended)));

        // A removal that stopped half-way: its cut stored, the pod's later events deleted, its first ones not yet.
        Kraud.Projections.Audit.EventArchiveRecord record;
        await using (var session = app.Store.LightweightSession())
        {
            record = await session.Query<Kraud.Projections.Audit.EventArchiveRecord>().OrderByDescending(a => a.Id).FirstAsync();
            var cut = await app.Host.Services.GetRequiredService<Kraud.Projections.Replay.PlatformCheckpoints>().LatestAtOrBeforeAsync(record.ToSeq, default);
            (record.RemovedUpToSeq, record.RemovedBefore) = (cut!.Seq, cut.MaxAt);
            session.Store(record);
            await session.SaveChangesAsync();
        }
        await ScalarAsync($"with gone as (delete from kraud.mt_events where stream_id = '{ended}' and version > 2 returning 1) select count(*) from gone");
        Assert.Equal(2, (await app.EventsOf(Guid.Parse(ended))).Count);
        // Its view leaves with its first event, so the removal that goes on finds the stream and its view together.
        await using (var session = app.Store.QuerySession())
            Assert.NotNull(await session.LoadAsync<PodView>(Guid.Parse(ended)));

        (await tenant.Gql("mutation { removeArchivedEvents { file } }")).ShouldFailWith("FORBIDDEN");
        var removed = (await app.AsOperator("mutation { removeArchivedEvents { removedUpToSeq removedEvents } }")).ShouldSucceed().Data.GetProperty("removeArchivedEvents");
        Assert.True(removed.GetProperty("removedEvents").GetInt64() > 0);
        Assert.Empty(await app.EventsOf(Guid.Parse(ended)));
        await using (var session = app.Store.QuerySession())
            Assert.Null(await session.LoadAsync<PodView>(Guid.Parse(ended)));
        (await app.AsOperator("mutation { removeArchivedEvents { file } }")).ShouldFailWith("PRECONDITION");
    }

    [Fact]
    public async Task a_live_pod_is_compacted_to_a_snapshot_of_its_state_that_folds_decides_and_rebuilds_its_view_like_the_events_it_replaced()
    {
        var removal = await ArchiveAndRemoveAsync();
        var id = Guid.Parse(removal.Live);
        var cut = removal.Archive.GetProperty("removedUpToSeq").GetInt64();
        var removedBefore = removal.Archive.GetProperty("removedBefore").GetDateTime().ToUniversalTime();
        var serializer = app.Store.Options.Serializer();
        async Task<(string Pod, int Version)> ViewAsync()
        {
            await using var session = app.Store.QuerySession();
            var doc = await session.LoadAsync<PodView>(id);
            return (serializer.ToJson(doc!.Pod), doc.Version);
        }

        // The snapshot folds to what the pod's events folded to (the inline view, written as they were appended), at the same version.
        var view = await ViewAsync();
        // The archive tells how many events the snapshots replaced: at least the pod's own (all at or before the cut) but one.
        Assert.True(removal.Archive.GetProperty("compactedEvents").GetInt64() >= view.Version - 1, removal.Archive.ToString());
        await using (var session = app.Store.QuerySession())
        {
            var folded = await Streams.LoadAsync<Pod>(session, id);
            Assert.Equal(view, (serializer.ToJson(folded.State), folded.Version));
            var snapshot = (await session.Events.FetchStreamAsync(id))[0];
            Assert.IsType<Compacted<Pod>>(snapshot.Data);
            // It stands for the event it replaced: that event's time (before the boundary) and tenant, not the compaction's.
            Assert.True(snapshot.Timestamp.UtcDateTime <= removedBefore, $"{snapshot.Timestamp:O} after {removedBefore:O}");
            Assert.Equal(removal.Tenant.Id.ToString(), snapshot.GetHeader(Kraud.Projections.Audit.AuditHeaders.Tenant)?.ToString());
            Assert.Equal(view.Version, (int)(await session.Events.FetchStreamStateAsync(id))!.Version);
        }

        // A command decides on the snapshot and appends at the version after it.
        var scaled = (await removal.Tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 2) { version } }", new { id = removal.Live }))
            .ShouldSucceed().Data.GetProperty("scalePod");
        Assert.Equal(view.Version + 1, scaled.GetProperty("version").GetInt32());
        await removal.Tenant.WaitForPodAsync(removal.Live, p => p.Instances().Count(i => i.State() == "RUNNING") == 2,
            TimeSpan.FromSeconds(30), "the pod runs two replicas");
        // Its timeline from the boundary has the scale and no snapshot; time travel after the boundary folds from the snapshot.
        var timeline = (await removal.Tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type } }", new { id = removal.Live })).ShouldSucceed()
            .Data.GetProperty("timeline").EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Contains("pod_scaled", timeline);
        Assert.DoesNotContain(timeline, t => t!.StartsWith("compacted", StringComparison.Ordinal));
        Assert.Equal(1, (await removal.Tenant.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { replicas } }",
            new { id = removal.Live, t = removedBefore.AddMilliseconds(1) })).ShouldSucceed().Data.GetProperty("pod").GetProperty("replicas").GetInt32());

        // The inline view rebuilt from the log (snapshot and later events) is the one written live.
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var live = await ViewAsync();
        await RebuildAsync("PodView");
        Assert.Equal(live, await ViewAsync());

        // The hosts it ran on are compacted too, and still decide from their views (a host's stream is long-lived by nature).
        await using (var session = app.Store.QuerySession())
        {
            var host = Guid.Parse((await removal.Tenant.PodAsync(removal.Live))!.Value.Instances()[0].GetProperty("hostId").GetString()!);
            Assert.IsType<Compacted<Kraud.Domain.Fleet.Host>>((await session.Events.FetchStreamAsync(host))[0].Data);
        }
        Assert.True(await ScalarAsync($"select count(*) from kraud.mt_events where stream_id = '{id}' and seq_id <= {cut}") == 1);
    }

    [Fact]
    public async Task a_live_cluster_its_vpc_and_its_hosts_peer_sets_are_compacted_and_the_cluster_still_scales_from_its_snapshot()
    {
        var tenant = await TenantScope.CreateAsync(app);
        const string Fields = "id revision state nodePools { nodes }";
        var created = (await tenant.Gql($"mutation($p: [NodePoolInput!]!) {{ createKubernetesCluster(name: \"compacted\", version: \"1.34\", controlPlaneZone: \"fsn1-a\", nodePools: $p) {{ {Fields} }} }}",
            new { p = new[] { new { name = "workers", nodes = 1, cpu = 2, memoryMiB = 2048 } } })).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        var cluster = created.Id();
        async Task<JsonElement> ClusterAsync() =>
            (await tenant.Gql($"query($id: ID!) {{ kubernetesCluster(id: $id) {{ {Fields} controlPlane {{ instances {{ hostId }} }} }} }}", new { id = cluster })).ShouldSucceed()
            .Data.GetProperty("kubernetesCluster");
        await Eventually.Until(async () => (await ClusterAsync()).State() == "RUNNING", TimeSpan.FromSeconds(45), "the cluster runs");
        // A second event on the cluster's stream before the cut.
        var scaled = (await tenant.Gql($"mutation($id: ID!, $r: Int) {{ scaleNodePool(clusterId: $id, pool: \"workers\", nodes: 2, expectedRevision: $r) {{ {Fields} }} }}",
            new { id = cluster, r = created.GetProperty("revision").GetInt32() })).ShouldSucceed().Data.GetProperty("scaleNodePool");
        var host = Guid.Parse((await ClusterAsync()).GetProperty("controlPlane").Instances()[0].HostId());
        var peerSet = Kraud.Projections.Network.PeerSetView.StreamFor(host);
        var vpc = Kraud.Domain.Network.Vpc.IdFor(tenant.Id);
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        Assert.True((await app.EventsOf(peerSet)).Count > 1, "the host's peer set changed more than once (the mesh placed the cluster's microVMs)");

        var archive = await ArchiveAndRemoveUpToNowAsync(cluster, peerSet.ToString(), vpc.ToString());
        var cut = archive.GetProperty("removedUpToSeq").GetInt64();
        Assert.True(archive.GetProperty("compactedEvents").GetInt64() > 0, archive.ToString());

        // Each stream keeps one row up to the cut: the cluster's and the VPC's a snapshot of their deciders' state, the
        // peer set its last change (every change lists all peers). The rows after the cut stay.
        var id = Guid.Parse(cluster);
        var serializer = app.Store.Options.Serializer();
        await using (var session = app.Store.QuerySession())
        {
            var events = await session.Events.FetchStreamAsync(id);
            Assert.IsType<Compacted<KubernetesCluster>>(events[0].Data);
            Assert.True(events[0].Sequence <= cut);
            var view = (await session.LoadAsync<KubernetesClusterView>(id))!;
            var folded = await Streams.LoadAsync<KubernetesCluster>(session, id);
            Assert.Equal((serializer.ToJson(view.Cluster), view.Version), (serializer.ToJson(folded.State), folded.Version));
            Assert.Equal(scaled.GetProperty("revision").GetInt32(), view.Version);

            Assert.IsType<Compacted<Kraud.Domain.Network.Vpc>>((await session.Events.FetchStreamAsync(vpc))[0].Data);
            var peers = await session.Events.FetchStreamAsync(peerSet);
            Assert.IsType<Kraud.Projections.Network.HostPeerSetChanged>(peers[0].Data);
            Assert.Equal((await session.LoadAsync<Kraud.Projections.Network.PeerSetView>(peerSet))!.Revision,
                ((Kraud.Projections.Network.HostPeerSetChanged)peers.Last().Data).Revision);
        }
        foreach (var stream in new[] { id, peerSet, vpc })
            Assert.Equal(1, await ScalarAsync($"select count(*) from kraud.mt_events where stream_id = '{stream}' and seq_id <= {cut}"));

        // The cluster decides on its snapshot: it scales at the revision after it, and the VPC gives its pods addresses.
        var again = (await tenant.Gql($"mutation($id: ID!, $r: Int) {{ scaleNodePool(clusterId: $id, pool: \"workers\", nodes: 3, expectedRevision: $r) {{ {Fields} }} }}",
            new { id = cluster, r = scaled.GetProperty("revision").GetInt32() })).ShouldSucceed().Data.GetProperty("scaleNodePool");
        Assert.Equal(scaled.GetProperty("revision").GetInt32() + 1, again.GetProperty("revision").GetInt32());
        await Eventually.Until(async () => (await ClusterAsync()).State() == "RUNNING" &&
                                           (await ClusterAsync()).GetProperty("nodePools")[0].GetProperty("nodes").GetInt32() == 3,
            TimeSpan.FromSeconds(45), "the cluster runs three workers");

        // Its timeline from the boundary has the new scale and no snapshot; the chain still proves itself; the platform now
        // has the cluster's pods.
        var timeline = (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type } }", new { id = cluster })).ShouldSucceed()
            .Data.GetProperty("timeline").EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Contains("node_pool_scaled", timeline);
        Assert.DoesNotContain(timeline, t => t!.StartsWith("compacted", StringComparison.Ordinal));
        Assert.True((await app.AsOperator("query { verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());
        var pods = (await tenant.Gql("{ pods(namespace: \"k8s-compacted\") { nodes { id } } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("nodes")
            .EnumerateArray().Select(p => p.Id()).ToList();
        Assert.Equal(2, pods.Count);
        var platform = (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id state } } }", new { t = DateTime.UtcNow })).ShouldSucceed()
            .Data.GetProperty("platformAt").GetProperty("pods").EnumerateArray().ToList();
        Assert.All(pods, p => Assert.Equal("RUNNING", platform.Single(q => q.Id() == p).State()));

        // The inline views rebuilt from the log (snapshots and later events) are the ones written live.
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        async Task<string> ViewsAsync()
        {
            await using var session = app.Store.QuerySession();
            return serializer.ToJson((await session.LoadAsync<KubernetesClusterView>(id))!.Cluster) + serializer.ToJson((await session.LoadAsync<Kraud.Projections.Network.VpcView>(vpc))!.Vpc);
        }
        var live = await ViewsAsync();
        await app.Store.Advanced.RebuildSingleStreamAsync<KubernetesClusterView>(id);
        await app.Store.Advanced.RebuildSingleStreamAsync<Kraud.Projections.Network.VpcView>(vpc);
        Assert.Equal(live, await ViewsAsync());
    }

    [Fact]
    public async Task a_kubernetes_object_is_compacted_still_applies_and_a_watch_from_a_version_before_the_cut_is_told_410_expired()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        string Manifest(string mode) => kubectl.WriteFile($"settings-{mode}.yaml", $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {mode}\n");
        (await kubectl.RunAsync("apply", "-f", Manifest("a"))).ShouldSucceed();
        (await kubectl.RunAsync("apply", "-f", Manifest("b"))).ShouldSucceed();
        // The list's own version (kubectl get -o json wraps the items in a List of its own, without one).
        async Task<string> ListedAsync() => (await kubectl.RunAsync("get", "--raw", $"/clusters/{cluster.Id}/api/v1/namespaces/default/configmaps")).ShouldSucceed().Json()
            .GetProperty("metadata").GetProperty("resourceVersion").GetString()!;
        var listed = await ListedAsync();
        Guid id;
        await using (var connection = new NpgsqlConnection(app.ConnectionString))
        {
            await connection.OpenAsync();
            await using var cmd = new NpgsqlCommand("select id from kraud.mt_doc_kubeobjectview where data ->> 'Name' = 'settings' and data ->> 'ClusterId' = @cluster", connection);
            cmd.Parameters.AddWithValue("cluster", cluster.Id);
            id = (Guid)(await cmd.ExecuteScalarAsync())!;
        }
        Assert.True((await app.EventsOf(id)).Count > 1);

        // The cut is a checkpoint: one at or after the list's version puts that version before it.
        await Eventually.Until(async () => await ScalarAsync("select coalesce(max(seq), 0) from kraud.replay_checkpoints") >= long.Parse(listed, CultureInfo.InvariantCulture),
            TimeSpan.FromSeconds(30), "a checkpoint covers the list's version");
        var archive = await ArchiveAndRemoveUpToNowAsync(id.ToString());
        Assert.True(long.Parse(listed, CultureInfo.InvariantCulture) <= archive.GetProperty("removedUpToSeq").GetInt64(), $"the list at {listed} is before the cut: {archive}");
        Assert.IsType<Compacted<Kraud.Domain.KubernetesApi.KubeObject>>((await app.EventsOf(id))[0].Data);
        Assert.Equal(1, await ScalarAsync($"select count(*) from kraud.mt_events where stream_id = '{id}' and seq_id <= {archive.GetProperty("removedUpToSeq").GetInt64()}"));

        // The object reads and applies on its snapshot.
        async Task<string> ModeAsync() =>
            (await kubectl.RunAsync("get", "configmap", "settings", "-o", "json")).ShouldSucceed().Json().GetProperty("data").GetProperty("mode").GetString()!;
        Assert.Equal("b", await ModeAsync());
        (await kubectl.RunAsync("apply", "-f", Manifest("c"))).ShouldSucceed();
        Assert.Equal("c", await ModeAsync());

        // A watch from a version before the cut cannot be answered from the log any more: one ERROR event, 410 Expired, as
        // the API server answers after etcd compacted; from a fresh list's version it watches.
        async Task<List<JsonElement>> WatchAsync(string version) =>
            (await kubectl.RunAsync("get", "--raw", $"/clusters/{cluster.Id}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={version}&timeoutSeconds=2"))
            .ShouldSucceed().Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        var expired = Assert.Single(await WatchAsync(listed));
        Assert.Equal("ERROR", expired.GetProperty("type").GetString());
        Assert.Equal((410, "Expired"), (expired.GetProperty("object").GetProperty("code").GetInt32(), expired.GetProperty("object").GetProperty("reason").GetString()));
        Assert.DoesNotContain(await WatchAsync(await ListedAsync()), e => e.GetProperty("type").GetString() == "ERROR");
    }

    [Fact]
    public async Task a_deleted_app_leaves_the_log_whole_with_its_view_and_reads_before_the_cut_still_need_the_archive()
    {
        var early = DateTime.UtcNow;
        var tenant = await TenantScope.CreateAsync(app);
        async Task<JsonElement> InstanceAsync(string id) =>
            (await tenant.Gql("query($id: ID!) { appInstance(id: $id) { id state parts { pod { id } } } }", new { id })).ShouldSucceed().Data.GetProperty("appInstance");
        var id = (await tenant.Gql("mutation { launchApp(app: \"redis\", version: \"7.2.6\", name: \"gone\") { app { id } } }")).ShouldSucceed()
            .Data.GetProperty("launchApp").GetProperty("app").Id();
        var running = await Eventually.Get(() => InstanceAsync(id), a => a.State() == "RUNNING", TimeSpan.FromSeconds(60), "the app runs");
        var pod = running.GetProperty("parts")[0].GetProperty("pod").Id();
        (await tenant.Gql("mutation($id: ID!) { deleteApp(id: $id) { id } }", new { id })).ShouldSucceed();
        await Eventually.Until(async () => (await InstanceAsync(id)).State() == "DELETED", TimeSpan.FromSeconds(60), "the app is deleted");
        await tenant.WaitForPodAsync(pod, "STOPPED");
        var appEvents = (await app.EventsOf(Guid.Parse(id))).Count;
        Assert.True(appEvents > 1, $"{appEvents} events");

        var archive = await ArchiveAndRemoveUpToNowAsync(id, pod);
        // Gone whole, as its ended pod: no snapshot of a deleted app is left to fold. Its stream's row keeps the version.
        Assert.Empty(await app.EventsOf(Guid.Parse(id)));
        Assert.Empty(await app.EventsOf(Guid.Parse(pod)));
        Assert.Equal(1, await ScalarAsync($"select count(*) from kraud.mt_streams where id = '{id}'"));
        Assert.True(archive.GetProperty("removedEvents").GetInt64() >= appEvents, archive.ToString());

        // After the cut the app is simply absent; its view left with its stream (a rebuild would not make it either).
        Assert.Equal(JsonValueKind.Null, (await tenant.Gql("query($id: ID!) { appInstance(id: $id) { id } }", new { id })).ShouldSucceed()
            .Data.GetProperty("appInstance").ValueKind);
        Assert.Empty((await tenant.Gql("{ appInstances { id } }")).ShouldSucceed().Data.GetProperty("appInstances").EnumerateArray());
        await using (var session = app.Store.QuerySession())
            Assert.Null(await session.LoadAsync<Kraud.Projections.Apps.AppInstanceView>(Guid.Parse(id)));
        var now = (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id } } }", new { t = DateTime.UtcNow })).ShouldSucceed()
            .Data.GetProperty("platformAt").GetProperty("pods").EnumerateArray();
        Assert.DoesNotContain(now, p => p.Id() == pod);
        // Its history, and the platform before the cut, are in the archive.
        (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type } }", new { id })).ShouldFailWith("ARCHIVE_REQUIRED");
        (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id } } }", new { t = early })).ShouldFailWith("ARCHIVE_REQUIRED");
        Assert.True((await app.AsOperator("query { verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());
    }

    [Fact]
    public async Task a_deleted_kubernetes_object_and_a_deleted_cluster_leave_the_log_whole_and_an_object_of_that_name_is_created_again_after_the_removal()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        string Manifest(string mode) => kubectl.WriteFile($"old-{mode}.yaml", $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  mode: {mode}\n");
        (await kubectl.RunAsync("apply", "-f", Manifest("a"))).ShouldSucceed();
        (await kubectl.RunAsync("apply", "-f", Manifest("b"))).ShouldSucceed();
        var uid = (await kubectl.RunAsync("get", "configmap", "old", "-o", "json")).ShouldSucceed().Json().GetProperty("metadata").GetProperty("uid").GetString();
        (await kubectl.RunAsync("delete", "configmap", "old")).ShouldSucceed();
        var id = new Kraud.Domain.KubernetesApi.KubeObjectKey(Guid.Parse(cluster.Id), "ConfigMap", "default", "old").StreamId;
        var version = (await app.EventsOf(id)).Last().Version;
        Assert.True((await app.EventsOf(id)).Count > 2);

        await ArchiveAndRemoveUpToNowAsync(id.ToString());
        Assert.Empty(await app.EventsOf(id));
        Assert.NotEqual(0, (await kubectl.RunAsync("get", "configmap", "old")).ExitCode);

        // The name is free: a new object of it starts the stream again after the version its row kept, with a new uid.
        (await kubectl.RunAsync("apply", "-f", Manifest("c"))).ShouldSucceed();
        var again = (await kubectl.RunAsync("get", "configmap", "old", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal("c", again.GetProperty("data").GetProperty("mode").GetString());
        Assert.NotEqual(uid, again.GetProperty("metadata").GetProperty("uid").GetString());
        var created = Assert.Single(await app.EventsOf(id));
        Assert.Equal(version + 1, created.Version);

        // A deleted cluster goes whole too, and takes its objects' streams with it.
        (await cluster.Tenant.Gql("mutation($id: ID!) { deleteKubernetesCluster(id: $id) { id } }", new { id = cluster.Id })).ShouldSucceed();
        await Eventually.Until(async () => (await cluster.Tenant.Gql("{ pods(first: 200) { nodes { state } } }")).ShouldSucceed().Data.GetProperty("pods")
            .GetProperty("nodes").EnumerateArray().All(p => p.State() == "STOPPED"), TimeSpan.FromSeconds(60), "the cluster's machines stopped");
        var clusterId = Guid.Parse(cluster.Id);
        Assert.True((await app.EventsOf(clusterId)).Count > 1);
        await ArchiveAndRemoveUpToNowAsync(cluster.Id, id.ToString());
        Assert.Empty(await app.EventsOf(clusterId));
        Assert.Empty(await app.EventsOf(id));
        Assert.Equal(JsonValueKind.Null, (await cluster.Tenant.Gql("query($id: ID!) { kubernetesCluster(id: $id) { id } }", new { id = cluster.Id })).ShouldSucceed()
            .Data.GetProperty("kubernetesCluster").ValueKind);
        await using (var session = app.Store.QuerySession())
            Assert.Null(await session.LoadAsync<KubernetesClusterView>(clusterId));
        (await cluster.Tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type } }", new { id = cluster.Id })).ShouldFailWith("ARCHIVE_REQUIRED");
    }

    [Fact]
    public async Task a_deleted_pod_volume_and_ingress_leave_the_log_with_their_views_and_read_as_absent_after_the_cut_and_archive_required_before_it()
    {
        var early = DateTime.UtcNow;
        var tenant = await TenantScope.CreateAsync(app);
        var pod = (await tenant.CreatePodAsync("web")).Id();
        await tenant.WaitForPodAsync(pod, "RUNNING");
        var volume = (await tenant.CreateVolumeAsync("data")).Id();
        await tenant.WaitForVolumeAsync(volume, "HEALTHY");
        var host = $"web-{Guid.NewGuid():N}"[..24] + ".ingress.kraud.cloud";
        var ingress = (await tenant.Gql("mutation($in: CreateIngressInput!) { createIngress(input: $in) { id } }",
            new { @in = new { name = "web", kind = "MANAGED", routes = new[] { new { host, path = "/", podId = pod, port = 80 } } } })).ShouldSucceed()
            .Data.GetProperty("createIngress").Id();
        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { id } }", new { id = ingress })).ShouldSucceed();
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod })).ShouldSucceed();
        (await tenant.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = volume })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod, "STOPPED");
        await tenant.WaitForVolumeAsync(volume, "DELETED");
        var ids = new[] { pod, volume, ingress };

        var archive = await ArchiveAndRemoveUpToNowAsync(ids);
        // Over by the cut (no replica left, deleted, deleted): each stream left whole, its row keeps its version, and its
        // view left with it (a rebuild of the view would not make it either).
        foreach (var id in ids)
        {
            Assert.Empty(await app.EventsOf(Guid.Parse(id)));
            Assert.Equal(1, await ScalarAsync($"select count(*) from kraud.mt_streams where id = '{id}'"));
        }
        await using (var session = app.Store.QuerySession())
        {
            Assert.Null(await session.LoadAsync<PodView>(Guid.Parse(pod)));
            Assert.Null(await session.LoadAsync<Kraud.Projections.Volumes.VolumeView>(Guid.Parse(volume)));
            Assert.Null(await session.LoadAsync<Kraud.Projections.Ingresses.IngressView>(Guid.Parse(ingress)));
        }

        // After the cut they are absent, not broken: reads by id answer nothing, lists and the platform leave them out.
        var reads = (await tenant.Gql("query($p: ID!, $v: ID!) { pod(id: $p) { id } volume(id: $v) { id } pods { nodes { id } } volumes { nodes { id } } ingresses { id } }",
            new { p = pod, v = volume })).ShouldSucceed().Data;
        Assert.Equal(JsonValueKind.Null, reads.GetProperty("pod").ValueKind);
        Assert.Equal(JsonValueKind.Null, reads.GetProperty("volume").ValueKind);
        Assert.Empty(reads.GetProperty("pods").GetProperty("nodes").EnumerateArray());
        Assert.Empty(reads.GetProperty("volumes").GetProperty("nodes").EnumerateArray());
        Assert.Empty(reads.GetProperty("ingresses").EnumerateArray());
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod })).ShouldFailWith("NOT_FOUND");
        var platform = (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id } volumes { id } ingresses { id } } }",
            new { t = DateTime.UtcNow })).ShouldSucceed().Data.GetProperty("platformAt");
        foreach (var kind in new[] { "pods", "volumes", "ingresses" })
            Assert.DoesNotContain(platform.GetProperty(kind).EnumerateArray(), r => ids.Contains(r.Id()));

        // Their history, and the platform before the cut, are in the archive.
        (await app.AsOperator("query($t: DateTime!) { platformAt(asOf: $t) { pods { id } } }", new { t = early })).ShouldFailWith("ARCHIVE_REQUIRED");
        (await tenant.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state } }", new { id = pod, t = DateTime.UtcNow })).ShouldFailWith("ARCHIVE_REQUIRED");
        (await tenant.Gql("query($id: ID!, $t: DateTime) { volume(id: $id, asOf: $t) { state } }", new { id = volume, t = DateTime.UtcNow })).ShouldFailWith("ARCHIVE_REQUIRED");
        foreach (var id in ids) (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type } }", new { id })).ShouldFailWith("ARCHIVE_REQUIRED");
        Assert.True(archive.GetProperty("removedEvents").GetInt64() > 0, archive.ToString());
        Assert.True((await app.AsOperator("query { verifyAuditChain { valid } }")).ShouldSucceed().Data.GetProperty("verifyAuditChain").GetProperty("valid").GetBoolean());
    }

    /// <summary>An archive of the log up to now written with removeFromLog, once a checkpoint covers the streams named.</summary>
    private async Task<JsonElement> ArchiveAndRemoveUpToNowAsync(params string[] streams)
    {
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        var last = await ScalarAsync($"select max(seq_id) from kraud.mt_events where stream_id in ({string.Join(", ", streams.Select(s => $"'{s}'"))})");
        await Eventually.Until(async () => await ScalarAsync("select coalesce(max(seq), 0) from kraud.replay_checkpoints") >= last, TimeSpan.FromSeconds(30),
            "a checkpoint covers the streams");
        (await app.AsOperator("mutation { signAuditDigest { seq } }")).ShouldSucceed();
        await Task.Delay(10); // the signed head's entry is older than the instant archived up to
        return (await app.AsOperator(
                "mutation($b: DateTime) { archiveEvents(before: $b, removeFromLog: true) { file fromSeq toSeq events toEntry headHash removedUpToSeq removedEvents removedBefore compactedEvents } }",
                new { b = DateTime.UtcNow }))
            .ShouldSucceed().Data.GetProperty("archiveEvents");
    }

    private async Task RebuildAsync(string name)
    {
        (await app.AsOperator("mutation($n: String!) { rebuildProjection(name: $n) { name } }", new { n = name })).ShouldSucceed();
        var done = await Eventually.Get(async () => (await app.AsOperator("query($n: String!) { rebuildJob(name: $n) { state } }", new { n = name }))
                .ShouldSucceed().Data.GetProperty("rebuildJob"),
            j => j.GetProperty("state").GetString() != "RUNNING", TimeSpan.FromSeconds(60), $"{name} was rebuilt");
        Assert.Equal("COMPLETED", done.GetProperty("state").GetString());
    }

    private async Task<List<(long Id, string Hash)>> EntriesAsync()
    {
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand("select id, data ->> 'Hash' from kraud.mt_doc_auditentry order by id", connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<(long, string)>();
        while (await reader.ReadAsync()) rows.Add((reader.GetInt64(0), reader.GetString(1)));
        return rows;
    }

    private Task<long> ScalarAsync(string sql) => SqlScalar.ScalarAsync(app.ConnectionString, sql);

    public void Dispose() => _cli.Dispose();
}
