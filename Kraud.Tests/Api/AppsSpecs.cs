using System.Text.Json;
using Kraud.Domain.Apps;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>Managed Apps: the YAML catalog, launch as a saga (all parts RUNNING, or rolled back and FAILED), upgrade, delete, secrets.</summary>
[Collection(ApiCollection.Name)]
public class AppsSpecs(KraudApp app) : IAsyncLifetime
{
    // An app's parts take several vCPUs and GiBs each, and its zone keeps its N+2 reserve: room earlier specs may hold.
    public Task InitializeAsync() => app.ReclaimFleetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    private const string PodFields = "id name namespace state owner { kind id }";
    private const string Fields = $"id name namespace tenantId app version state reason config secretFields revision changelog {{ version notes }} parts {{ kind name rollout state pod {{ {PodFields} instances {{ id hostId }} volumes {{ volumeId mountPath readOnly }} }} volume {{ id name class sizeGiB state encrypted attachedTo }} ingress {{ id name kind state routes {{ host path podId port }} replicas {{ hostId zone }} }} }}";
    private const string Launch = $"mutation($a: String!, $v: String!, $c: JSON, $n: String) {{ launchApp(app: $a, version: $v, config: $c, name: $n) {{ app {{ {Fields} }} generatedSecrets {{ name value }} changelog {{ version notes }} }} }}";

    private static Task<GqlResponse> LaunchApp(TenantScope tenant, string name = "cache", string app = "redis", string version = "7.2.6", object? config = null) =>
        tenant.Gql(Launch, new { a = app, v = version, c = config, n = name });

    private static async Task<JsonElement> Instance(TenantScope tenant, string id) =>
        (await tenant.Gql($"query($id: ID!) {{ appInstance(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("appInstance");

    private static Task<JsonElement> WaitFor(TenantScope tenant, string id, string state, int seconds = 60) =>
        Eventually.Get(() => Instance(tenant, id), a => a.State() == state, TimeSpan.FromSeconds(seconds), $"app {id} is {state}");

    private static IEnumerable<JsonElement> Parts(JsonElement app) => app.GetProperty("parts").EnumerateArray();

    [Fact]
    public async Task the_catalog_offers_postgresql_redis_and_nextcloud_with_their_config_fields_and_every_version_launches()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var apps = (await tenant.Gql("{ apps { name displayName versions { version changelog launchable unavailableReason config { name kind required default options min max generated } services { name image replicas } volumes { name class sizeGiB } ingress { host service port } } } }"))
            .ShouldSucceed().Data.GetProperty("apps").EnumerateArray().ToDictionary(a => a.GetProperty("name").GetString()!);
        Assert.Equal(["nextcloud", "postgresql", "redis"], apps.Keys.Order());
        Assert.Equal(["7.2.6", "7.4.1"], apps["redis"].GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("version").GetString()));
        Assert.True(apps["redis"].GetProperty("versions")[0].GetProperty("launchable").GetBoolean());

        Assert.Equal(["16.4.0", "16.6.0"], apps["postgresql"].GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("version").GetString()));
        Assert.All(apps.Values.SelectMany(a => a.GetProperty("versions").EnumerateArray()), v =>
            Assert.Equal((true, JsonValueKind.Null), (v.GetProperty("launchable").GetBoolean(), v.GetProperty("unavailableReason").ValueKind)));
        var nextcloud = apps["nextcloud"].GetProperty("versions")[0];
        Assert.Equal(["files:GFS", "db-data:BLOCK"], nextcloud.GetProperty("volumes").EnumerateArray()
            .Select(v => $"{v.GetProperty("name").GetString()}:{v.GetProperty("class").GetString()}"));
        var kinds = nextcloud.GetProperty("config").EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!, f => f.GetProperty("kind").GetString());
        Assert.Equal("INGRESS_HOST", kinds["host"]);
        Assert.Equal("VOLUME_SIZE", kinds["files"]);
        Assert.Equal("SECRET", kinds["admin-password"]);
        Assert.Equal("ZONE", kinds["zone"]);
        var redisFields = apps["redis"].GetProperty("versions")[0].GetProperty("config").EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!);
        Assert.Equal("SELECT", redisFields["eviction"].GetProperty("kind").GetString());
        Assert.True(redisFields["password"].GetProperty("generated").GetBoolean());
        Assert.Equal("20", apps["postgresql"].GetProperty("versions")[0].GetProperty("config").EnumerateArray()
            .Single(f => f.GetProperty("name").GetString() == "storage").GetProperty("default").GetString());
    }

    [Fact]
    public async Task launching_an_app_runs_every_part_and_shows_the_generated_secret_once_which_reaches_only_the_guest()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var launch = (await LaunchApp(tenant, config: new { eviction = "allkeys-lfu" })).ShouldSucceed().Data.GetProperty("launchApp");
        var secret = Assert.Single(launch.GetProperty("generatedSecrets").EnumerateArray());
        Assert.Equal("password", secret.GetProperty("name").GetString());
        var password = secret.GetProperty("value").GetString()!;
        Assert.Equal(32, password.Length);
        Assert.Equal("LAUNCHING", launch.GetProperty("app").State());
        var id = launch.GetProperty("app").Id();

        var running = await WaitFor(tenant, id, "RUNNING");
        Assert.Equal("7.2.6", running.GetProperty("version").GetString());
        var part = Assert.Single(Parts(running));
        Assert.Equal(("redis", "RUNNING", 1), (part.GetProperty("name").GetString(), part.State(), part.GetProperty("rollout").GetInt32()));
        Assert.Equal("cache-redis-r1", part.GetProperty("pod").GetProperty("name").GetString());
        Assert.Equal("app", part.GetProperty("pod").GetProperty("owner").GetProperty("kind").GetString());
        Assert.Equal("allkeys-lfu", running.GetProperty("config").GetProperty("eviction").GetString());
        Assert.Equal(["password"], running.GetProperty("secretFields").EnumerateArray().Select(s => s.GetString()));
        Assert.DoesNotContain(password, running.ToString());

        // The guest gets the value; the event log (exported, replayed) never holds it.
        var vm = part.GetProperty("pod").GetProperty("instances")[0];
        var launched = app.Driver(vm.GetProperty("hostId").GetString()!).Find(Guid.Parse(vm.Id()))!;
        Assert.Equal(password, launched.Env["REDIS_PASSWORD"]);
        var timeline = (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type data } }", new { id = part.GetProperty("pod").Id() })).ShouldSucceed();
        Assert.Contains("${secret:", timeline.Body);
        Assert.DoesNotContain(password, timeline.Body);
        Assert.DoesNotContain(password, JsonSerializer.Serialize((await app.EventsOf(Guid.Parse(id))).Select(e => e.Data).ToList<object>()));
    }

    [Fact]
    public async Task config_written_inline_in_the_query_works_and_the_zone_field_places_every_part_in_that_zone()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var launch = (await tenant.Gql($"mutation {{ launchApp(app: \"redis\", version: \"7.4.1\", name: \"zoned\", config: {{eviction: \"noeviction\", zone: \"fsn1-b\"}}) {{ app {{ {Fields} }} }} }}"))
            .ShouldSucceed().Data.GetProperty("launchApp").GetProperty("app");
        var running = await WaitFor(tenant, launch.Id(), "RUNNING");
        Assert.Equal("noeviction", running.GetProperty("config").GetProperty("eviction").GetString());
        var vm = Assert.Single(Parts(running)).GetProperty("pod").GetProperty("instances")[0];
        Assert.Equal("fsn1-b", app.Agent(vm.GetProperty("hostId").GetString()!).Definition.Zone);
    }

    [Fact]
    public async Task a_launch_whose_part_fails_removes_what_it_created_and_is_failed_with_the_reason()
    {
        var tenant = await TenantScope.CreateAsync(app);
        foreach (var driver in app.Drivers) driver.FailImage("redis:7.2.6-alpine", "image redis:7.2.6-alpine: manifest unknown");
        JsonElement failed;
        try
        {
            var launch = (await LaunchApp(tenant, name: "broken")).ShouldSucceed().Data.GetProperty("launchApp").GetProperty("app");
            failed = await WaitFor(tenant, launch.Id(), "FAILED");
        }
        finally
        {
            foreach (var driver in app.Drivers) driver.RepairImage("redis:7.2.6-alpine");
        }
        Assert.Equal("service redis: image redis:7.2.6-alpine: manifest unknown", failed.GetProperty("reason").GetString());
        var pod = Assert.Single(Parts(failed)).GetProperty("pod");
        await tenant.WaitForPodAsync(pod.Id(), "STOPPED");
        Assert.Contains((await app.EventsOf(Guid.Parse(failed.Id()))).Select(e => e.Data), e => e is AppRolloutFailed);
        (await tenant.Gql("mutation($a: String!) { upgradeApp(id: $a, version: \"7.4.1\") { app { id } } }", new { a = failed.Id() })).ShouldFailWith("PRECONDITION");
    }

    [Fact]
    public async Task upgrading_an_app_rolls_out_the_new_version_beside_the_old_then_removes_the_old_and_returns_the_changelog()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var launch = (await LaunchApp(tenant, name: "sessions")).ShouldSucceed().Data.GetProperty("launchApp");
        var password = launch.GetProperty("generatedSecrets")[0].GetProperty("value").GetString()!;
        var id = launch.GetProperty("app").Id();
        var before = await WaitFor(tenant, id, "RUNNING");
        var oldPod = Assert.Single(Parts(before)).GetProperty("pod").Id();

        (await tenant.Gql("mutation($a: ID!) { upgradeApp(id: $a, version: \"7.2.6\") { app { id } } }", new { a = id })).ShouldFailWith("VALIDATION");
        var upgrade = (await tenant.Gql($"mutation($a: ID!) {{ upgradeApp(id: $a, version: \"7.4.1\") {{ app {{ {Fields} }} generatedSecrets {{ name }} changelog {{ version notes }} }} }}",
            new { a = id })).ShouldSucceed().Data.GetProperty("upgradeApp");
        var entry = Assert.Single(upgrade.GetProperty("changelog").EnumerateArray());
        Assert.Equal("7.4.1", entry.GetProperty("version").GetString());
        Assert.Contains("CVE-2024-31449", entry.GetProperty("notes").GetString());
        Assert.Empty(upgrade.GetProperty("generatedSecrets").EnumerateArray());
        Assert.Equal("UPGRADING", upgrade.GetProperty("app").State());

        var after = await Eventually.Get(() => Instance(tenant, id), a => a.State() == "RUNNING" && a.GetProperty("version").GetString() == "7.4.1",
            TimeSpan.FromSeconds(60), "the app runs 7.4.1");
        var part = Assert.Single(Parts(after));
        Assert.Equal(("sessions-redis-r2", 2), (part.GetProperty("pod").GetProperty("name").GetString(), part.GetProperty("rollout").GetInt32()));
        Assert.Equal(["7.2.6", "7.4.1"], after.GetProperty("changelog").EnumerateArray().Select(c => c.GetProperty("version").GetString()));
        await tenant.WaitForPodAsync(oldPod, "STOPPED");
        var vm = part.GetProperty("pod").GetProperty("instances")[0];
        var launched = app.Driver(vm.GetProperty("hostId").GetString()!).Find(Guid.Parse(vm.Id()))!;
        Assert.Equal("redis:7.4.1-alpine", launched.Image);
        Assert.Equal(password, launched.Env["REDIS_PASSWORD"]);
    }

    [Theory]
    [InlineData("{\"colour\": \"red\"}", "config.colour is not a setting of redis 7.2.6")]
    [InlineData("{\"eviction\": \"random\"}", "config.eviction 'random' is not one of")]
    [InlineData("{\"zone\": \"fsn9-z\"}", "config.zone 'fsn9-z' is not a zone")]
    [InlineData("{\"password\": \"short\"}", "config.password must be 12-256 characters")]
    public async Task a_launch_with_invalid_config_is_refused_and_nothing_is_appended(string config, string message)
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.EventCountAsync();
        var refused = (await LaunchApp(tenant, config: JsonDocument.Parse(config).RootElement)).ShouldFailWith("VALIDATION");
        Assert.Contains(message, refused.FirstErrorMessage);
        (await LaunchApp(tenant, version: "9.9.9")).ShouldFailWith("NOT_FOUND");
        Assert.Equal(before, await tenant.EventCountAsync());
    }

    [Fact]
    public async Task a_launch_with_a_bad_host_or_volume_size_is_refused_and_nothing_is_appended()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.EventCountAsync();
        var badHost = (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { host = "Not A Host" })).ShouldFailWith("VALIDATION");
        Assert.Contains("config.host 'Not A Host' is not a host name", badHost.FirstErrorMessage);
        (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { files = 5 })).ShouldFailWith("VALIDATION");
        (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { files = 500 })).ShouldFailWith("VALIDATION"); // host is required
        var tooBig = (await LaunchApp(tenant, "db", "postgresql", "16.4.0", new { storage = 5000 })).ShouldFailWith("VALIDATION");
        Assert.Contains("config.storage must be a size in GiB between 1 and 2000", tooBig.FirstErrorMessage);
        Assert.Equal(before, await tenant.EventCountAsync());
    }

    private static JsonElement Part(JsonElement app, string kind, string name, int? rollout = null) =>
        Parts(app).Single(p => p.GetProperty("kind").GetString() == kind && p.GetProperty("name").GetString() == name
                               && (rollout is null || p.GetProperty("rollout").GetInt32() == rollout));

    private static string PlatformHost(string name) => $"{name}-{Guid.NewGuid():N}"[..20] + ".ingress.kraud.cloud";

    /// <summary>The microVM of the pod (one replica), as its host runtime was told to boot it.</summary>
    private Kraud.Domain.HostProtocol.MicroVmSpec Launched(JsonElement pod)
    {
        var vm = Assert.Single(pod.GetProperty("instances").EnumerateArray());
        return app.Driver(vm.GetProperty("hostId").GetString()!).Find(Guid.Parse(vm.Id()))!;
    }

    [Fact]
    public async Task launching_postgresql_runs_its_pod_on_a_healthy_encrypted_block_volume_that_only_its_tenant_sees()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var launch = (await LaunchApp(tenant, "pg", "postgresql", "16.4.0", new { storage = 5 })).ShouldSucceed().Data.GetProperty("launchApp").GetProperty("app");
        Assert.Equal("LAUNCHING", launch.State());
        var running = await WaitFor(tenant, launch.Id(), "RUNNING", 120);

        var volume = Part(running, "VOLUME", "data");
        Assert.Equal(("HEALTHY", 1), (volume.State(), volume.GetProperty("rollout").GetInt32()));
        var v = volume.GetProperty("volume");
        Assert.Equal(("BLOCK", 5, true), (v.GetProperty("class").GetString(), v.GetProperty("sizeGiB").GetInt32(), v.GetProperty("encrypted").GetBoolean()));
        Assert.StartsWith("pg-data-", v.GetProperty("name").GetString());
        var pod = Part(running, "POD", "postgres").GetProperty("pod");
        Assert.Equal([pod.Id()], v.GetProperty("attachedTo").EnumerateArray().Select(a => a.GetString()));
        var mount = Assert.Single(pod.GetProperty("volumes").EnumerateArray());
        Assert.Equal((v.Id(), "/var/lib/postgresql/data", false), (mount.GetProperty("volumeId").GetString(), mount.GetProperty("mountPath").GetString(),
            mount.GetProperty("readOnly").GetBoolean()));

        // The guest boots with the volume, its replicas and its wrapped data key.
        var disk = Assert.Single(Launched(pod).Volumes!);
        Assert.Equal((Guid.Parse(v.Id()), "BLOCK", "/var/lib/postgresql/data", 3), (disk.VolumeId, disk.Class, disk.MountPath, disk.ReplicaHosts.Count));
        Assert.NotNull(disk.Key);

        var other = await TenantScope.CreateAsync(app);
        Assert.Equal(JsonValueKind.Null, (await other.Gql("query($id: ID!) { volume(id: $id) { id } }", new { id = v.Id() })).ShouldSucceed().Data.GetProperty("volume").ValueKind);
        Assert.Empty((await other.Gql("{ volumes { nodes { id } } }")).ShouldSucceed().Data.GetProperty("volumes").GetProperty("nodes").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, (await other.Gql("query($id: ID!) { appInstance(id: $id) { id } }", new { id = launch.Id() })).ShouldSucceed().Data
            .GetProperty("appInstance").ValueKind);
        (await other.Gql("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = v.Id() })).ShouldFailWith("NOT_FOUND");
        // The volume is the app's: the tenant can neither delete it, nor pull it from the app's pod, nor mount it elsewhere (the app deletes it with itself).
        var owner = (await tenant.Gql("query($id: ID!) { volume(id: $id) { owner { kind id name } } }", new { id = v.Id() })).ShouldSucceed().Data
            .GetProperty("volume").GetProperty("owner");
        Assert.Equal(("app", launch.Id(), "pg"), (owner.GetProperty("kind").GetString(), owner.Id(), owner.GetProperty("name").GetString()));
        var stray = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("stray")).Id(), "RUNNING");
        var events = await tenant.EventCountAsync();
        foreach (var (mutation, args) in new (string, object)[]
                 {
                     ("mutation($id: ID!) { deleteVolume(id: $id) { id } }", new { id = v.Id() }),
                     ("mutation($v: ID!, $p: ID!) { detachVolume(volumeId: $v, podId: $p) { id } }", new { v = v.Id(), p = pod.Id() }),
                     ("mutation($v: ID!, $p: ID!) { attachVolume(volumeId: $v, podId: $p, mountPath: \"/data\", readOnly: true) { id } }", new { v = v.Id(), p = stray.Id() }),
                 })
            Assert.Contains($"is part of app 'pg' ({launch.Id()})", (await tenant.Gql(mutation, args)).ShouldFailWith("PRECONDITION").FirstErrorMessage);
        Assert.Equal(events, await tenant.EventCountAsync());
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = stray.Id() })).ShouldSucceed();
        await DeleteAndWaitAsync(tenant, launch.Id());
    }

    /// <summary>deleteApp, then every part is gone: pods stopped, volumes crypto-erased (DELETED), the ingress deleted.</summary>
    private async Task<JsonElement> DeleteAndWaitAsync(TenantScope tenant, string id)
    {
        var before = await Instance(tenant, id);
        (await tenant.Gql("mutation($id: ID!) { deleteApp(id: $id) { state } }", new { id })).ShouldSucceed();
        var deleted = await WaitFor(tenant, id, "DELETED", 60);
        foreach (var pod in Parts(before).Where(p => p.GetProperty("kind").GetString() == "POD" && p.GetProperty("pod").ValueKind == JsonValueKind.Object))
            await tenant.WaitForPodAsync(pod.GetProperty("pod").Id(), "STOPPED");
        foreach (var volume in Parts(before).Where(p => p.GetProperty("kind").GetString() == "VOLUME" && p.GetProperty("volume").ValueKind == JsonValueKind.Object))
            await tenant.WaitForVolumeAsync(volume.GetProperty("volume").Id(), "DELETED", 60);
        Assert.Empty((await tenant.Gql("{ ingresses { id } }")).ShouldSucceed().Data.GetProperty("ingresses").EnumerateArray());
        return deleted;
    }

    [Fact]
    public async Task nextcloud_runs_on_its_volumes_behind_a_managed_ingress_routing_its_host_to_the_web_pod_and_deleting_it_leaves_nothing_behind()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var host = PlatformHost("cloud");
        var launch = (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { host, files = 20, zone = "fsn1-a" })).ShouldSucceed().Data.GetProperty("launchApp");
        Assert.Equal(["admin-password", "db-password"], launch.GetProperty("generatedSecrets").EnumerateArray().Select(s => s.GetProperty("name").GetString()));
        var running = await WaitFor(tenant, launch.GetProperty("app").Id(), "RUNNING", 120);

        Assert.Equal(["POD:db", "POD:web", "VOLUME:files", "VOLUME:db-data", $"INGRESS:files-{running.Id().Replace("-", "")[..8]}"],
            Parts(running).Select(p => $"{p.GetProperty("kind").GetString()}:{p.GetProperty("name").GetString()}"));
        var web = Part(running, "POD", "web").GetProperty("pod");
        var files = Part(running, "VOLUME", "files").GetProperty("volume");
        Assert.Equal(("GFS", "HEALTHY"), (files.GetProperty("class").GetString(), files.State()));
        Assert.Equal([web.Id()], files.GetProperty("attachedTo").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(["files:/var/www/html", "files:/var/www/html"], web.GetProperty("instances").EnumerateArray()
            .Select(vm => app.Driver(vm.GetProperty("hostId").GetString()!).Find(Guid.Parse(vm.Id()))!.Volumes!.Single())
            .Select(d => $"{(d.VolumeId == Guid.Parse(files.Id()) ? "files" : "other")}:{d.MountPath}"));
        Assert.Equal("BLOCK", Part(running, "VOLUME", "db-data").GetProperty("volume").GetProperty("class").GetString());

        var ingress = Parts(running).Single(p => p.GetProperty("kind").GetString() == "INGRESS").GetProperty("ingress");
        Assert.Equal(("MANAGED", "ACTIVE"), (ingress.GetProperty("kind").GetString(), ingress.State()));
        var route = Assert.Single(ingress.GetProperty("routes").EnumerateArray());
        Assert.Equal((host, "/", web.Id(), 80), (route.GetProperty("host").GetString(), route.GetProperty("path").GetString(), route.GetProperty("podId").GetString(),
            route.GetProperty("port").GetInt32()));
        Assert.Equal(2, ingress.GetProperty("replicas").EnumerateArray().Select(r => r.GetProperty("zone").GetString()).Distinct().Count());
        // The ingress hosts route the host name to the web pod's microVMs.
        var config = (await app.AsOperator("query($h: ID!) { ingressHostConfig(hostId: $h) { ingresses { ingressId routes { host backends } } } }",
            new { h = ingress.GetProperty("replicas")[0].GetProperty("hostId").GetString() })).ShouldSucceed().Data.GetProperty("ingressHostConfig");
        var served = config.GetProperty("ingresses").EnumerateArray().Single(i => i.GetProperty("ingressId").GetString() == ingress.Id()).GetProperty("routes")[0];
        Assert.Equal(2, served.GetProperty("backends").GetArrayLength());
        // The ingress is the app's: the tenant adds domains to it, but re-routing and deleting it is the app's business.
        var refused = (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { id } }", new { id = ingress.Id() })).ShouldFailWith("PRECONDITION");
        Assert.Contains("is part of app", refused.FirstErrorMessage);

        await DeleteAndWaitAsync(tenant, running.Id());
    }

    [Fact]
    public async Task a_launch_whose_volume_cannot_be_placed_is_failed_naming_the_volume_and_leaves_no_pod_volume_or_ingress_behind()
    {
        var tenant = await TenantScope.CreateAsync(app);
        // 16000 GiB is more than any storage host of the fleet has.
        var launch = (await LaunchApp(tenant, "huge", "nextcloud", "30.0.2", new { host = PlatformHost("huge"), files = 16000 })).ShouldSucceed().Data
            .GetProperty("launchApp").GetProperty("app");
        var failed = await WaitFor(tenant, launch.Id(), "FAILED", 120);
        Assert.StartsWith("volume files: cannot be placed: No zone has 3 READY storage hosts with 16000 GiB free", failed.GetProperty("reason").GetString());
        Assert.Contains((await app.EventsOf(Guid.Parse(failed.Id()))).Select(e => e.Data), e => e is AppRollbackStarted);

        foreach (var pod in Parts(failed).Where(p => p.GetProperty("kind").GetString() == "POD"))
            Assert.Equal("STOPPED", pod.State());
        var volumes = Parts(failed).Where(p => p.GetProperty("kind").GetString() == "VOLUME").ToList();
        Assert.Equal(2, volumes.Count);
        foreach (var volume in volumes) await tenant.WaitForVolumeAsync(volume.GetProperty("volume").Id(), "DELETED", 60);
        Assert.Equal("DELETED", Parts(failed).Single(p => p.GetProperty("kind").GetString() == "INGRESS").State());
        Assert.Empty((await tenant.Gql("{ ingresses { id } }")).ShouldSucceed().Data.GetProperty("ingresses").EnumerateArray());
        Assert.Empty((await tenant.Gql("{ volumes { nodes { id } } }")).ShouldSucceed().Data.GetProperty("volumes").GetProperty("nodes").EnumerateArray());
    }

    [Fact]
    public async Task a_launch_whose_ingress_cannot_be_placed_is_failed_naming_the_ingress_and_removes_its_pods_and_volumes()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var zoneB = app.Agents.All.Where(a => a.Definition is { Role: "Ingress", Zone: "fsn1-b" }).ToList();
        foreach (var agent in zoneB) await app.CordonAsync(agent.Id);
        JsonElement failed;
        try
        {
            var launch = (await LaunchApp(tenant, "nohost", "nextcloud", "30.0.2", new { host = PlatformHost("nohost"), files = 10 })).ShouldSucceed().Data
                .GetProperty("launchApp").GetProperty("app");
            failed = await WaitFor(tenant, launch.Id(), "FAILED", 120);
        }
        finally
        {
            foreach (var agent in zoneB) await app.UncordonAsync(agent.Id);
        }
        Assert.Matches("^ingress nohost-[0-9a-f]{8}: zone fsn1-b has 0 READY INGRESS host", failed.GetProperty("reason").GetString());
        Assert.Equal("NOT_CREATED", Parts(failed).Single(p => p.GetProperty("kind").GetString() == "INGRESS").State());
        Assert.All(Parts(failed).Where(p => p.GetProperty("kind").GetString() == "POD"), p => Assert.Equal("STOPPED", p.State()));
        foreach (var volume in Parts(failed).Where(p => p.GetProperty("kind").GetString() == "VOLUME"))
            await tenant.WaitForVolumeAsync(volume.GetProperty("volume").Id(), "DELETED", 60);
    }

    [Fact]
    public async Task deleting_an_app_while_it_launches_removes_the_volume_and_pod_the_launch_created()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var id = (await LaunchApp(tenant, "brief", "postgresql", "16.4.0", new { storage = 5 })).ShouldSucceed().Data.GetProperty("launchApp").GetProperty("app").Id();
        (await tenant.Gql("mutation($id: ID!) { deleteApp(id: $id) { state } }", new { id })).ShouldSucceed();
        var deleted = await WaitFor(tenant, id, "DELETED", 60);
        Assert.Contains((await app.EventsOf(Guid.Parse(id))).Select(e => e.Data), e => e is AppRolloutFailed { Reason: "the app was deleted during the rollout" });
        foreach (var pod in Parts(deleted).Where(p => p.GetProperty("kind").GetString() == "POD" && p.GetProperty("pod").ValueKind == JsonValueKind.Object))
            Assert.Equal("STOPPED", pod.State());
        foreach (var volume in Parts(deleted).Where(p => p.GetProperty("kind").GetString() == "VOLUME" && p.GetProperty("volume").ValueKind == JsonValueKind.Object))
            await tenant.WaitForVolumeAsync(volume.GetProperty("volume").Id(), "DELETED", 60);
        Assert.Empty((await tenant.Gql("{ volumes { nodes { id } } }")).ShouldSucceed().Data.GetProperty("volumes").GetProperty("nodes").EnumerateArray());
    }

    [Fact]
    public async Task upgrading_postgresql_stops_the_old_pod_first_and_hands_the_same_volume_to_the_new_version()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var launch = (await LaunchApp(tenant, "orders", "postgresql", "16.4.0", new { storage = 5 })).ShouldSucceed().Data.GetProperty("launchApp");
        var password = launch.GetProperty("generatedSecrets")[0].GetProperty("value").GetString()!;
        var id = launch.GetProperty("app").Id();
        var before = await WaitFor(tenant, id, "RUNNING", 120);
        var volumeId = Part(before, "VOLUME", "data").GetProperty("volume").Id();
        var oldPod = Part(before, "POD", "postgres").GetProperty("pod").Id();

        var grow = (await tenant.Gql("mutation($a: ID!) { upgradeApp(id: $a, version: \"16.6.0\", config: {storage: 50}) { app { id } } }", new { a = id }))
            .ShouldFailWith("PRECONDITION");
        Assert.Contains("volume 'data' is 5 GiB and this upgrade asks for 50 GiB: Kraud cannot resize volumes yet", grow.FirstErrorMessage);

        var upgrade = (await tenant.Gql($"mutation($a: ID!) {{ upgradeApp(id: $a, version: \"16.6.0\") {{ app {{ {Fields} }} changelog {{ version notes }} }} }}",
            new { a = id })).ShouldSucceed().Data.GetProperty("upgradeApp");
        Assert.Equal("UPGRADING", upgrade.GetProperty("app").State());
        Assert.Contains("downtime: postgres stopped before 16.6.0 starts", upgrade.GetProperty("app").GetProperty("reason").GetString());
        Assert.Contains("short downtime", Assert.Single(upgrade.GetProperty("changelog").EnumerateArray()).GetProperty("notes").GetString());

        var after = await Eventually.Get(() => Instance(tenant, id), a => a.State() == "RUNNING" && a.GetProperty("version").GetString() == "16.6.0",
            TimeSpan.FromSeconds(120), "the app runs 16.6.0");
        var volume = Part(after, "VOLUME", "data");
        Assert.Equal(volumeId, volume.GetProperty("volume").Id());
        var pod = Part(after, "POD", "postgres");
        Assert.Equal(("orders-postgres-r2", 2), (pod.GetProperty("pod").GetProperty("name").GetString(), pod.GetProperty("rollout").GetInt32()));
        Assert.Equal([pod.GetProperty("pod").Id()], volume.GetProperty("volume").GetProperty("attachedTo").EnumerateArray().Select(a => a.GetString()));
        await tenant.WaitForPodAsync(oldPod, "STOPPED");
        var guest = Launched(pod.GetProperty("pod"));
        Assert.Equal(("postgres:16.6-bookworm", Guid.Parse(volumeId), password), (guest.Image, Assert.Single(guest.Volumes!).VolumeId, guest.Env["POSTGRES_PASSWORD"]));
        Assert.Single((await tenant.Gql("{ volumes { nodes { id } } }")).ShouldSucceed().Data.GetProperty("volumes").GetProperty("nodes").EnumerateArray());
        await DeleteAndWaitAsync(tenant, id);
    }

    [Fact]
    public async Task upgrading_nextcloud_keeps_its_volumes_and_its_ingress_whose_route_moves_to_the_new_web_pod()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var host = PlatformHost("share");
        var id = (await LaunchApp(tenant, "share", "nextcloud", "30.0.2", new { host, files = 10, zone = "fsn1-b" })).ShouldSucceed().Data
            .GetProperty("launchApp").GetProperty("app").Id();
        var before = await WaitFor(tenant, id, "RUNNING", 120);
        var ingressId = Parts(before).Single(p => p.GetProperty("kind").GetString() == "INGRESS").GetProperty("ingress").Id();
        var volumes = Parts(before).Where(p => p.GetProperty("kind").GetString() == "VOLUME").Select(p => p.GetProperty("volume").Id()).ToList();
        var oldPods = Parts(before).Where(p => p.GetProperty("kind").GetString() == "POD").Select(p => p.GetProperty("pod").Id()).ToList();

        var upgrade = (await tenant.Gql($"mutation($a: ID!) {{ upgradeApp(id: $a, version: \"30.0.4\") {{ app {{ {Fields} }} }} }}", new { a = id }))
            .ShouldSucceed().Data.GetProperty("upgradeApp").GetProperty("app");
        Assert.Equal("downtime: db stopped before 30.0.4 starts (a BLOCK volume attaches to one pod at a time)", upgrade.GetProperty("reason").GetString());
        var after = await Eventually.Get(() => Instance(tenant, id), a => a.State() == "RUNNING" && a.GetProperty("version").GetString() == "30.0.4",
            TimeSpan.FromSeconds(120), "the app runs 30.0.4");

        Assert.Equal(volumes, Parts(after).Where(p => p.GetProperty("kind").GetString() == "VOLUME").Select(p => p.GetProperty("volume").Id()));
        var ingress = Parts(after).Single(p => p.GetProperty("kind").GetString() == "INGRESS").GetProperty("ingress");
        var web = Part(after, "POD", "web").GetProperty("pod");
        Assert.Equal((ingressId, "share-web-r2"), (ingress.Id(), web.GetProperty("name").GetString()));
        Assert.Equal((host, web.Id()), (ingress.GetProperty("routes")[0].GetProperty("host").GetString(), ingress.GetProperty("routes")[0].GetProperty("podId").GetString()));
        Assert.All(web.GetProperty("instances").EnumerateArray(), vm =>
            Assert.Equal("nextcloud:30.0.4-apache", app.Driver(vm.GetProperty("hostId").GetString()!).Find(Guid.Parse(vm.Id()))!.Image));
        Assert.Equal([Part(after, "POD", "db").GetProperty("pod").Id()],
            Part(after, "VOLUME", "db-data").GetProperty("volume").GetProperty("attachedTo").EnumerateArray().Select(a => a.GetString()));
        foreach (var pod in oldPods) await tenant.WaitForPodAsync(pod, "STOPPED");
        await DeleteAndWaitAsync(tenant, id);
    }

    [Fact]
    public async Task a_failed_upgrade_boots_the_old_version_again_on_the_same_volume()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var id = (await LaunchApp(tenant, "ledger", "postgresql", "16.4.0", new { storage = 5 })).ShouldSucceed().Data.GetProperty("launchApp").GetProperty("app").Id();
        var before = await WaitFor(tenant, id, "RUNNING", 120);
        var volumeId = Part(before, "VOLUME", "data").GetProperty("volume").Id();
        var oldPod = Part(before, "POD", "postgres").GetProperty("pod").Id();

        foreach (var driver in app.Drivers) driver.FailImage("postgres:16.6-bookworm", "image postgres:16.6-bookworm: manifest unknown");
        JsonElement after;
        try
        {
            (await tenant.Gql("mutation($a: ID!) { upgradeApp(id: $a, version: \"16.6.0\") { app { id } } }", new { a = id })).ShouldSucceed();
            after = await Eventually.Get(() => Instance(tenant, id), a => a.State() == "RUNNING" && a.GetProperty("reason").ValueKind == JsonValueKind.String,
                TimeSpan.FromSeconds(120), "the failed upgrade is rolled back and the old version runs again");
        }
        finally
        {
            foreach (var driver in app.Drivers) driver.RepairImage("postgres:16.6-bookworm");
        }
        Assert.Equal("16.4.0", after.GetProperty("version").GetString());
        Assert.Equal("upgrade to 16.6.0 failed: service postgres: image postgres:16.6-bookworm: manifest unknown", after.GetProperty("reason").GetString());
        await tenant.WaitForPodAsync(oldPod, "STOPPED");
        var restored = Part(after, "POD", "postgres", rollout: 1).GetProperty("pod");
        Assert.NotEqual(oldPod, restored.Id());
        Assert.Equal(("ledger-postgres-r1", "RUNNING"), (restored.GetProperty("name").GetString(), restored.State()));
        var volume = Part(after, "VOLUME", "data").GetProperty("volume");
        Assert.Equal((volumeId, "HEALTHY"), (volume.Id(), volume.State()));
        Assert.Equal([restored.Id()], volume.GetProperty("attachedTo").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(("postgres:16.4-bookworm", Guid.Parse(volumeId)), (Launched(restored).Image, Assert.Single(Launched(restored).Volumes!).VolumeId));
        Assert.Equal("STOPPED", Part(after, "POD", "postgres", rollout: 2).State());
        await DeleteAndWaitAsync(tenant, id);
    }

    [Fact]
    public async Task deleting_an_app_stops_its_parts_and_apps_are_invisible_to_other_tenants()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var id = (await LaunchApp(tenant, name: "queue")).ShouldSucceed().Data.GetProperty("launchApp").GetProperty("app").Id();
        var running = await WaitFor(tenant, id, "RUNNING");
        (await LaunchApp(tenant, name: "queue")).ShouldFailWith("CONFLICT");
        var pod = Assert.Single(Parts(running)).GetProperty("pod").Id();
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod })).ShouldFailWith("PRECONDITION");

        var other = await TenantScope.CreateAsync(app);
        Assert.Empty((await other.Gql("{ appInstances { id } }")).ShouldSucceed().Data.GetProperty("appInstances").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, (await other.Gql("query($id: ID!) { appInstance(id: $id) { id } }", new { id })).ShouldSucceed().Data.GetProperty("appInstance").ValueKind);
        (await other.Gql("mutation($id: ID!) { deleteApp(id: $id) { id } }", new { id })).ShouldFailWith("NOT_FOUND");
        (await other.Gql("mutation($id: ID!) { upgradeApp(id: $id, version: \"7.4.1\") { app { id } } }", new { id })).ShouldFailWith("NOT_FOUND");

        var deleting = (await tenant.Gql($"mutation($id: ID!) {{ deleteApp(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("deleteApp");
        Assert.Equal("DELETING", deleting.State());
        await WaitFor(tenant, id, "DELETED");
        await tenant.WaitForPodAsync(pod, "STOPPED");
        Assert.Single((await tenant.Gql("{ appInstances { id } }")).ShouldSucceed().Data.GetProperty("appInstances").EnumerateArray());
    }
}
