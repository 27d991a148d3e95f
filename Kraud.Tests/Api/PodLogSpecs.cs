using System.Net.Http.Headers;
using System.Text.Json;
using Kraud.HostRuntime.Logs;
using Kraud.Tests.Infrastructure;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

/// <summary>
/// Workload logs as host runtimes ship them (the same shipper the qemu-microvm hosts use) and as tenants read them:
/// podLogs and the log stream, each tenant its own pods' lines only.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class PodLogSpecs(KraudApp app) : IAsyncLifetime
{
    private readonly SpecTenants _tenants = new(app);

    public Task InitializeAsync() => _tenants.InitializeAsync();

    public Task DisposeAsync() => _tenants.DisposeAsync();

    private WorkloadLogShipper Shipper => app.Host.Services.GetRequiredService<WorkloadLogShipper>();

    private async Task<(JsonElement Pod, Guid Vm)> RunningPodAsync(TenantScope tenant, string name = "logger", int replicas = 1)
    {
        var pod = await tenant.CreatePodAsync(name, replicas: replicas);
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        return (running, Guid.Parse(running.Instances()[0].Id()));
    }

    private async Task ShipAsync(TenantScope tenant, JsonElement pod, Guid vm, int replica, DateTimeOffset at, string stream, params string[] lines)
    {
        foreach (var line in lines) Shipper.Enqueue(new WorkloadLogLine(tenant.Id, Guid.Parse(pod.Id()), vm, replica, at, stream, line));
        await Shipper.FlushAsync(CancellationToken.None);
    }

    private static Task<GqlResponse> PodLogsAsync(TenantScope tenant, string podId, int? replica = null, int? tail = null, DateTime? since = null) =>
        tenant.Gql("query($id: ID!, $r: Int, $t: Int, $s: DateTime) { podLogs(podId: $id, replica: $r, tail: $t, since: $s) { at microVmId stream line replica } }",
            new { id = podId, r = replica, t = tail, s = since });

    [Fact]
    public async Task pod_logs_show_the_pods_lines_in_order_by_replica_tail_and_since_and_another_tenant_gets_not_found()
    {
        var tenant = await _tenants.NewAsync();
        var (pod, _) = await RunningPodAsync(tenant, replicas: 2);
        var vms = pod.Instances().Select(i => Guid.Parse(i.Id())).ToList();
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-5);
        await ShipAsync(tenant, pod, vms[0], 0, t0, "stdout", "zero-a", "zero-b");
        await ShipAsync(tenant, pod, vms[1], 1, t0.AddMinutes(1), "stderr", "one-a");
        await ShipAsync(tenant, pod, vms[0], 0, t0.AddMinutes(2), "stdout", "zero-c");

        var all = (await PodLogsAsync(tenant, pod.Id())).ShouldSucceed().Data.GetProperty("podLogs").EnumerateArray().ToList();
        Assert.Equal(["zero-a", "zero-b", "one-a", "zero-c"], all.Select(l => l.GetProperty("line").GetString()));
        Assert.Equal("stderr", all[2].GetProperty("stream").GetString());
        Assert.Equal(vms[1].ToString(), all[2].GetProperty("microVmId").GetString());
        Assert.Equal(["zero-b", "zero-c"], (await PodLogsAsync(tenant, pod.Id(), replica: 0, tail: 2)).ShouldSucceed().Data.GetProperty("podLogs")
            .EnumerateArray().Select(l => l.GetProperty("line").GetString()));
        Assert.Equal(["one-a", "zero-c"], (await PodLogsAsync(tenant, pod.Id(), since: t0.AddSeconds(30).UtcDateTime)).ShouldSucceed().Data.GetProperty("podLogs")
            .EnumerateArray().Select(l => l.GetProperty("line").GetString()));

        var other = await _tenants.NewAsync();
        (await PodLogsAsync(other, pod.Id())).ShouldFailWith("NOT_FOUND");
        // A line wrongly stamped with another tenant never shows up under this pod either.
        Shipper.Enqueue(new WorkloadLogLine(other.Id, Guid.Parse(pod.Id()), vms[0], 0, DateTimeOffset.UtcNow, "stdout", "foreign"));
        await Shipper.FlushAsync(CancellationToken.None);
        Assert.DoesNotContain("foreign", (await PodLogsAsync(tenant, pod.Id())).Body);
        (await PodLogsAsync(tenant, pod.Id(), tail: -1)).ShouldFailWith("VALIDATION");
    }

    [Fact]
    public async Task the_log_stream_sends_ndjson_or_server_sent_events_and_follows_new_lines_for_the_pods_tenant_only()
    {
        var tenant = await _tenants.NewAsync();
        var (pod, vm) = await RunningPodAsync(tenant, "follower");
        await ShipAsync(tenant, pod, vm, 0, DateTimeOffset.UtcNow, "stdout", "first", "second");
        using var client = app.Host.Server.CreateClient();

        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/api/pods/{pod.Id()}/logs?tail=1"))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
            using var response = await client.SendAsync(request);
            Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
            var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("second", JsonDocument.Parse(Assert.Single(lines)).RootElement.GetProperty("line").GetString());
        }

        using (var follow = new HttpRequestMessage(HttpMethod.Get, $"/api/pods/{pod.Id()}/logs?follow=true&tail=1"))
        {
            follow.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
            follow.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var response = await client.SendAsync(follow, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
            Assert.Contains("\"line\":\"second\"", await NextEventAsync(reader, cancel.Token));
            await ShipAsync(tenant, pod, vm, 0, DateTimeOffset.UtcNow, "stderr", "third");
            var third = await NextEventAsync(reader, cancel.Token);
            Assert.Contains("\"line\":\"third\"", third);
            Assert.Contains("\"stream\":\"stderr\"", third);
        }

        var other = await _tenants.NewAsync();
        using var foreign = new HttpRequestMessage(HttpMethod.Get, $"/api/pods/{pod.Id()}/logs");
        foreign.Headers.Authorization = new AuthenticationHeaderValue("Bearer", other.Token);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await client.SendAsync(foreign)).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await client.GetAsync($"/api/pods/{pod.Id()}/logs")).StatusCode);
    }

    /// <summary>The data line of the next server-sent event.</summary>
    private static async Task<string> NextEventAsync(StreamReader reader, CancellationToken ct)
    {
        string? data = null;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal)) data = line["data: ".Length..];
            else if (line.Length == 0 && data is not null) return data;
        }
        throw new EndOfStreamException("the log stream ended");
    }
}
