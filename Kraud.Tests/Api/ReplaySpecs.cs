using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class ReplaySpecs(KraudApp app)
{
    [Fact]
    public async Task a_pod_can_be_seen_as_it_was_at_an_earlier_instant()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("history");
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        await Task.Delay(50);
        var whileRunning = DateTime.UtcNow;
        await Task.Delay(50);
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id(), "STOPPED");

        const string query = "query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state version instances { state } } }";
        var then = (await tenant.Gql(query, new { id = pod.Id(), t = whileRunning })).ShouldSucceed().Data.GetProperty("pod");
        Assert.Equal("RUNNING", then.State());
        Assert.Single(then.Instances());
        var now = (await tenant.Gql(query, new { id = pod.Id(), t = DateTime.UtcNow })).ShouldSucceed().Data.GetProperty("pod");
        Assert.Equal("STOPPED", now.State());
        Assert.True(now.GetProperty("version").GetInt32() > then.GetProperty("version").GetInt32());
        var before = (await tenant.Gql(query, new { id = pod.Id(), t = whileRunning.AddHours(-1) })).ShouldSucceed().Data.GetProperty("pod");
        Assert.Equal(JsonValueKind.Null, before.ValueKind);
    }

    [Fact]
    public async Task the_timeline_of_a_pod_holds_its_events_and_what_they_caused_in_order()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("told", replicas: 2);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var events = (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { seq type streamId actor correlationId data } }", new { id = pod.Id() }))
            .ShouldSucceed().Data.GetProperty("timeline").EnumerateArray().ToList();

        var types = events.Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Equal("pod_requested", types[0]);
        Assert.Equal(2, types.Count(t => t == "pod_replica_running"));
        Assert.Equal(2, events.Count(e => e.GetProperty("type").GetString() == "micro_vm_placed" && e.GetProperty("streamId").GetString() != pod.Id()));
        var seqs = events.Select(e => e.GetProperty("seq").GetInt64()).ToList();
        Assert.Equal(seqs.Order(), seqs);
        Assert.Equal(pod.GetProperty("name").GetString(), events[0].GetProperty("data").GetProperty("Spec").GetProperty("Name").GetString());

        var other = await TenantScope.CreateAsync(app);
        Assert.Empty((await other.Gql("query($id: ID!) { timeline(resourceId: $id) { seq } }", new { id = pod.Id() })).ShouldSucceed()
            .Data.GetProperty("timeline").EnumerateArray());
    }

    [Fact]
    public async Task the_platform_can_be_seen_as_it_was_at_an_instant()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("snapshot");
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var running = DateTime.UtcNow;
        await Task.Delay(50);
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id(), "STOPPED");

        const string query = "query($t: DateTime!) { platformAt(asOf: $t) { asOf hosts { name state microVms { podId state } } pods { id state tenantId } volumes { id } ingresses { id } } }";
        var then = (await app.AsOperator(query, new { t = running })).ShouldSucceed().Data.GetProperty("platformAt");
        Assert.Equal("RUNNING", then.GetProperty("pods").EnumerateArray().Single(p => p.Id() == pod.Id()).State());
        Assert.Contains(then.GetProperty("hosts").EnumerateArray(), h => h.GetProperty("microVms").EnumerateArray().Any(v => v.GetProperty("podId").GetString() == pod.Id()));
        Assert.True(then.GetProperty("hosts").GetArrayLength() >= app.Agents.All.Count);

        // Once its deletion finished, the pod is no longer part of the platform (as deleted volumes and ingresses are not);
        // pod(asOf:) still tells its end.
        var now = (await app.AsOperator(query, new { t = DateTime.UtcNow })).ShouldSucceed().Data.GetProperty("platformAt");
        Assert.DoesNotContain(now.GetProperty("pods").EnumerateArray(), p => p.Id() == pod.Id());
        var ended = (await tenant.Gql("query($id: ID!, $t: DateTime) { pod(id: $id, asOf: $t) { state } }", new { id = pod.Id(), t = DateTime.UtcNow }))
            .ShouldSucceed().Data.GetProperty("pod");
        Assert.Equal("STOPPED", ended.State());

        var asTenant = (await tenant.Gql(query, new { t = running })).ShouldSucceed().Data.GetProperty("platformAt");
        Assert.All(asTenant.GetProperty("pods").EnumerateArray(), p => Assert.Equal(tenant.Id.ToString(), p.GetProperty("tenantId").GetString()));
        Assert.Empty(asTenant.GetProperty("hosts").EnumerateArray());
    }
}
