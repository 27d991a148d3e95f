using System.Text.Json;
using Kraud.Domain.Images;
using Kraud.Domain.Pods;
using Kraud.HostRuntime.Images;
using Kraud.Tests.HostRuntime;
using Kraud.Tests.Infrastructure;
using Npgsql;

namespace Kraud.Tests.Api;

/// <summary>createPod resolves the pod's image in a real registry; the simulated fleet records the digest it was given.</summary>
[Collection(ApiCollection.Name)]
public sealed class ImageSpecs(KraudApp app) : IClassFixture<ImageRegistries>, IAsyncLifetime
{
    private readonly SpecTenants _tenants = new(app);

    public Task InitializeAsync() => _tenants.InitializeAsync();

    public Task DisposeAsync() => _tenants.DisposeAsync();

    private const string PodFields = "id state reason version imageDigest instances { id hostId state exitCode }";

    private static async Task<GqlResponse> CreatePodAsync(TenantScope tenant, string image, string name = "web", int replicas = 1, string[]? command = null) =>
        await tenant.Gql($"mutation($in: CreatePodInput!) {{ createPod(input: $in) {{ {PodFields} }} }}",
            new { @in = new { name, image, cpu = 1, memoryMiB = 128, replicas, command } });

    /// <summary>Reads the pod with <see cref="PodFields"/>, and again after each commit to its stream, until <paramref name="done"/>.</summary>
    private Task<JsonElement> PodUntilAsync(TenantScope tenant, string id, Func<JsonElement, bool> done, TimeSpan timeout, string what) =>
        app.StreamCommits.UntilAsync(Guid.Parse(id),
            async () => (await tenant.Gql($"query($id: ID!) {{ pod(id: $id) {{ {PodFields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("pod"),
            done, timeout, what);

    private async Task<string> BusyboxDigestAsync()
    {
        using var client = new DistributionClient(new RegistryOptions { InsecureRegistries = ["127.0.0.0/8"] });
        return (await client.GetManifestAsync(app.Registry.HostPort, "library/nginx", "1.27", null, CancellationToken.None)).Digest;
    }

    [Fact]
    public async Task create_pod_resolves_the_image_to_its_digest_which_the_pod_shows_its_events_record_and_every_microvm_is_given()
    {
        var tenant = await _tenants.NewAsync();
        var digest = await BusyboxDigestAsync();

        var created = (await CreatePodAsync(tenant, "nginx:1.27", replicas: 2)).ShouldSucceed().Data.GetProperty("createPod");

        Assert.Equal(digest, created.GetProperty("imageDigest").GetString());
        var resolved = Assert.Single((await app.EventsOf(Guid.Parse(created.Id()))).Select(e => e.Data).OfType<PodImageResolved>());
        Assert.Equal(("docker.io/library/nginx:1.27", "docker.io", "library/nginx", digest),
            (resolved.Image.Reference, resolved.Image.Registry, resolved.Image.Repository, resolved.Image.Digest));
        Assert.Equal(["sh"], resolved.Image.Cmd);
        var running = await tenant.WaitForPodAsync(created.Id(), "RUNNING");
        foreach (var vm in running.Instances().Select(i => Guid.Parse(i.Id())))
            Assert.Equal(digest, app.Drivers.Select(d => d.Find(vm)).Single(s => s is not null)!.Oci!.Digest);
        // Each host confirmed the digest it booted: replay tells which digest ran where and when.
        var pulled = (await app.EventsOf(Guid.Parse(created.Id()))).Select(e => e.Data).OfType<PodReplicaImagePulled>().ToList();
        Assert.Equal(2, pulled.Count);
        Assert.All(pulled, p => Assert.Equal(digest, p.Digest));
    }

    [Fact]
    public async Task a_tag_moved_after_create_changes_nothing_for_the_pod_scale_and_restart_run_the_digest_it_resolved()
    {
        var tenant = await _tenants.NewAsync();
        var name = $"moving-{Guid.NewGuid():N}"[..15];
        using var first = await TestImage.BusyboxAsync();
        await first.ConfigAsync(cmd: ["sh", "-c", "echo first"]);
        var firstDigest = await first.PushAsync(app.Registry.HostPort, null, $"library/{name}:1");
        var pod = (await CreatePodAsync(tenant, $"{name}:1")).ShouldSucceed().Data.GetProperty("createPod");
        Assert.Equal(firstDigest, pod.GetProperty("imageDigest").GetString());
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var createdAt = DateTime.UtcNow;

        using var second = await TestImage.BusyboxAsync();
        await second.ConfigAsync(cmd: ["sh", "-c", "echo second"]);
        var secondDigest = await second.PushAsync(app.Registry.HostPort, null, $"library/{name}:1");
        Assert.NotEqual(firstDigest, secondDigest);

        (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 3) { id } }", new { id = pod.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        (await tenant.Gql("mutation($id: ID!) { restartPod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        var restarted = await PodUntilAsync(tenant, pod.Id(), p => p.State() == "RUNNING" && p.Instances().Count == 3, TimeSpan.FromSeconds(30), "the restarted pod runs");

        Assert.Equal(firstDigest, restarted.GetProperty("imageDigest").GetString());
        foreach (var vm in restarted.Instances().Select(i => Guid.Parse(i.Id())))
            Assert.Equal(firstDigest, app.Drivers.Select(d => d.Find(vm)).Single(s => s is not null)!.Oci!.Digest);
        Assert.Single((await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data).OfType<PodImageResolved>());
        // The pod as it was, and the digest it ran then, replayed.
        var then = (await tenant.Gql("query($id: ID!, $at: DateTime) { pod(id: $id, asOf: $at) { imageDigest } }", new { id = pod.Id(), at = createdAt }))
            .ShouldSucceed().Data.GetProperty("pod");
        Assert.Equal(firstDigest, then.GetProperty("imageDigest").GetString());
        // A new pod of that tag gets what the tag names now.
        var fresh = (await CreatePodAsync(tenant, $"{name}:1", name: "fresh")).ShouldSucceed().Data.GetProperty("createPod");
        Assert.Equal(secondDigest, fresh.GetProperty("imageDigest").GetString());
    }

    [Theory]
    [InlineData("does-not-exist-{0}:1")]
    [InlineData("nginx:no-such-tag-{0}")]
    [InlineData("nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("Upper/Case-{0}")]
    public async Task an_unknown_or_malformed_image_repository_or_tag_is_validation_naming_it_and_nothing_is_appended(string pattern)
    {
        var tenant = await _tenants.NewAsync();
        var image = string.Format(System.Globalization.CultureInfo.InvariantCulture, pattern, Guid.NewGuid().ToString("N")[..8]);
        var before = await tenant.EventCountAsync();

        var refused = (await CreatePodAsync(tenant, image)).ShouldFailWith("VALIDATION");

        Assert.Contains(image, refused.FirstErrorMessage);
        Assert.Equal(before, await tenant.EventCountAsync());
        Assert.Equal(0, (await tenant.Gql("{ pods { totalCount } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("totalCount").GetInt32());
    }

    [Fact]
    public async Task an_unreachable_registry_is_a_precondition_and_nothing_is_appended_but_the_refusal_is_audited()
    {
        var tenant = await _tenants.NewAsync();
        var before = await tenant.EventCountAsync();

        // Nothing listens on port 1.
        var refused = (await CreatePodAsync(tenant, "127.0.0.1:1/team/api:1")).ShouldFailWith("PRECONDITION");

        Assert.Contains("127.0.0.1:1", refused.FirstErrorMessage);
        Assert.Contains("cannot be reached", refused.FirstErrorMessage);
        Assert.Equal(before, await tenant.EventCountAsync());
        var rejected = await Eventually.Get(async () => (await tenant.Gql("{ rejectedCommands { nodes { action outcome } } }")).ShouldSucceed()
            .Data.GetProperty("rejectedCommands").GetProperty("nodes"), n => n.GetArrayLength() > 0, TimeSpan.FromSeconds(10), "the refusal is audited");
        Assert.Contains(rejected.EnumerateArray(), n => n.GetProperty("action").GetString() == "CreatePod"
                                                        && n.GetProperty("outcome").GetString()!.StartsWith("rejected PRECONDITION:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task an_image_without_entrypoint_or_cmd_needs_a_command()
    {
        var tenant = await _tenants.NewAsync();
        using var image = await TestImage.BusyboxAsync();
        var name = $"nocmd-{Guid.NewGuid():N}"[..14];
        await image.ConfigAsync();
        await image.PushAsync(app.Registry.HostPort, null, $"library/{name}:1");

        Assert.Contains("give the pod a command", (await CreatePodAsync(tenant, $"{name}:1")).ShouldFailWith("VALIDATION").FirstErrorMessage);
        (await CreatePodAsync(tenant, $"{name}:1", command: ["sleep", "60"])).ShouldSucceed();
    }

    [Fact]
    public async Task when_a_workload_exits_its_microvm_shows_the_exit_code_and_the_replica_is_replaced_after_its_back_off()
    {
        var tenant = await _tenants.NewAsync();
        var pod = (await CreatePodAsync(tenant, "nginx:1.27", name: "exits")).ShouldSucceed().Data.GetProperty("createPod");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = Guid.Parse(Assert.Single(running.Instances()).Id());

        Assert.True(app.Drivers.Single(d => d.Running.Contains(vm)).ExitWorkload(vm, 3));

        var exited = await PodUntilAsync(tenant, pod.Id(), p => p.Instances().Any(i => i.GetProperty("exitCode").ValueKind == JsonValueKind.Number),
            TimeSpan.FromSeconds(15), "the exit is recorded");
        var instance = Assert.Single(exited.Instances());
        Assert.Equal(3, instance.GetProperty("exitCode").GetInt32());
        Assert.Equal("FAILED", instance.State());
        Assert.Equal("the workload exited with code 3", exited.GetProperty("reason").GetString());
        var events = (await app.EventsOf(Guid.Parse(pod.Id()))).Select(e => e.Data).ToList();
        Assert.Equal(3, Assert.Single(events.OfType<PodReplicaExited>()).ExitCode);

        var again = await PodUntilAsync(tenant, pod.Id(), p => p.State() == "RUNNING" && p.Instances().All(i => i.Id() != vm.ToString()),
            TimeSpan.FromSeconds(30), "a new microVM replaces the one that exited");
        Assert.Equal(JsonValueKind.Null, Assert.Single(again.Instances()).GetProperty("exitCode").ValueKind);
    }
}
