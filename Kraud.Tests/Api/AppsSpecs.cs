using System.Text.Json;
using Kraud.Domain.Apps;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>Managed Apps: the YAML catalog, launch as a saga (all parts RUNNING, or rolled back and FAILED), upgrade, delete, secrets.</summary>
[Collection(ApiCollection.Name)]
public class AppsSpecs(KraudApp app)
{
    private const string PodFields = "id name namespace state owner { kind id }";
    private const string Fields = $"id name namespace tenantId app version state reason config secretFields revision changelog {{ version notes }} parts {{ kind name rollout state pod {{ {PodFields} instances {{ id hostId }} }} }}";
    private const string Launch = $"mutation($a: String!, $v: String!, $c: JSON, $n: String) {{ launchApp(app: $a, version: $v, config: $c, name: $n) {{ app {{ {Fields} }} generatedSecrets {{ name value }} changelog {{ version notes }} }} }}";

    private static Task<GqlResponse> LaunchApp(TenantScope tenant, string name = "cache", string app = "redis", string version = "7.2.6", object? config = null) =>
        tenant.Gql(Launch, new { a = app, v = version, c = config, n = name });

    private static async Task<JsonElement> Instance(TenantScope tenant, string id) =>
        (await tenant.Gql($"query($id: ID!) {{ appInstance(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("appInstance");

    private static Task<JsonElement> WaitFor(TenantScope tenant, string id, string state, int seconds = 60) =>
        Eventually.Get(() => Instance(tenant, id), a => a.State() == state, TimeSpan.FromSeconds(seconds), $"app {id} is {state}");

    private static IEnumerable<JsonElement> Parts(JsonElement app) => app.GetProperty("parts").EnumerateArray();

    [Fact]
    public async Task the_catalog_offers_postgresql_redis_and_nextcloud_with_their_config_fields_and_says_which_cannot_launch_yet()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var apps = (await tenant.Gql("{ apps { name displayName versions { version changelog launchable unavailableReason config { name kind required default options min max generated } services { name image replicas } volumes { name class sizeGiB } ingress { host service port } } } }"))
            .ShouldSucceed().Data.GetProperty("apps").EnumerateArray().ToDictionary(a => a.GetProperty("name").GetString()!);
        Assert.Equal(["nextcloud", "postgresql", "redis"], apps.Keys.Order());
        Assert.Equal(["7.2.6", "7.4.1"], apps["redis"].GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("version").GetString()));
        Assert.True(apps["redis"].GetProperty("versions")[0].GetProperty("launchable").GetBoolean());

        var nextcloud = apps["nextcloud"].GetProperty("versions")[0];
        Assert.False(nextcloud.GetProperty("launchable").GetBoolean());
        Assert.Contains("volumes (files: GFS, db-data: BLOCK) and an ingress", nextcloud.GetProperty("unavailableReason").GetString());
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
    public async Task apps_that_need_volumes_or_an_ingress_are_refused_until_those_exist_after_their_config_is_checked()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.EventCountAsync();
        var badHost = (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { host = "Not A Host" })).ShouldFailWith("VALIDATION");
        Assert.Contains("config.host 'Not A Host' is not a host name", badHost.FirstErrorMessage);
        (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { files = 5 })).ShouldFailWith("VALIDATION");
        var refused = (await LaunchApp(tenant, "files", "nextcloud", "30.0.2", new { host = "cloud.example.com", files = 500 })).ShouldFailWith("PRECONDITION");
        Assert.Contains("needs volumes (files: GFS, db-data: BLOCK) and an ingress ({{ host }}/ -> web:80)", refused.FirstErrorMessage);
        (await LaunchApp(tenant, "db", "postgresql", "16.4.0", new { storage = 50 })).ShouldFailWith("PRECONDITION");
        Assert.Equal(before, await tenant.EventCountAsync());
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
