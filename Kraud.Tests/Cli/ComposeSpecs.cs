using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Cli;

/// <summary>`kraud up` and `kraud down` with a real compose file, as processes against a running Kraud.</summary>
[Collection(CliCollection.Name)]
public sealed class ComposeSpecs(KraudProcess kraud) : IDisposable
{
    private readonly KraudCli _cli = new();
    private readonly string _host = $"shop-{Guid.NewGuid():N}"[..13] + ".ingress.kraud.cloud";

    private string Compose(int webReplicas, bool privileged = false) => $"""
        name: shop
        x-env: &env
          environment:
            MODE: {"${MODE:-production}"}
        services:
          web:
            <<: *env
            image: nginx:1.27
            command: ["nginx", "-g", "daemon off;"]
            ports: ["8080:80"]
            deploy:
              replicas: {webReplicas}
              resources: {"{ limits: { cpus: '1', memory: 256M } }"}
            x-kraud:
              ingress: {"{"} host: {_host} {"}"}
        {(privileged ? "    privileged: true\n" : "")}  db:
            image: postgres:16
            environment: ["POSTGRES_PASSWORD=secret"]
            volumes: ["pgdata:/var/lib/postgresql/data"]
        volumes:
          pgdata:
            x-kraud: {"{ class: BLOCK, sizeGiB: 5 }"}
        """;

    private async Task<string> WriteAsync(string text)
    {
        var dir = Path.Combine(_cli.Home, "shop");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "docker-compose.yml");
        await File.WriteAllTextAsync(file, text);
        return file;
    }

    private async Task<JsonElement> JsonAsync(params string[] args) => JsonDocument.Parse((await _cli.RunAsync(args)).ShouldSucceed().Stdout).RootElement;

    private async Task<List<JsonElement>> LivePodsAsync() =>
        (await JsonAsync("pods", "list", "-n", "shop", "-o", "json")).EnumerateArray().ToList();

    [Fact]
    public async Task up_creates_the_services_volume_and_ingress_a_second_up_changes_nothing_a_new_replica_count_scales_only_that_pod_and_down_removes_them()
    {
        await _cli.LoginAsNewTenantAdminAsync(kraud);
        var file = await WriteAsync(Compose(webReplicas: 2));

        var up = (await _cli.RunAsync("up", "-f", file, "--wait")).ShouldSucceed();
        Assert.Contains("+ volume shop-pgdata: BLOCK, 5 GiB", up.Stdout);
        Assert.Contains("+ pod web: nginx:1.27, 2 × 1 vCPU / 256 MiB", up.Stdout);
        Assert.Contains("+ pod db: postgres:16", up.Stdout);
        Assert.Contains($"+ ingress shop-web: {_host}/ → web:80", up.Stdout);
        Assert.Contains("plan: 4 to create, 0 to change, 0 to replace, 0 to delete", up.Stdout);
        Assert.Contains("project shop is running", up.Stdout);

        var pods = await LivePodsAsync();
        Assert.Equal(["db", "web"], pods.Select(p => p.GetProperty("name").GetString()).Order());
        Assert.All(pods, p => Assert.Equal("RUNNING", p.GetProperty("state").GetString()));
        var web = pods.Single(p => p.GetProperty("name").GetString() == "web");
        var db = pods.Single(p => p.GetProperty("name").GetString() == "db");
        Assert.Equal(2, web.GetProperty("replicas").GetInt32());
        Assert.Equal("production", web.GetProperty("env").GetProperty("MODE").GetString());
        Assert.Equal(["nginx", "-g", "daemon off;"], web.GetProperty("command").EnumerateArray().Select(c => c.GetString()));
        var volume = (await JsonAsync("volumes", "list", "-o", "json")).EnumerateArray().Single();
        Assert.Equal("shop-pgdata", volume.GetProperty("name").GetString());
        Assert.Equal(volume.GetProperty("id").GetString(), db.GetProperty("volumes")[0].GetProperty("volumeId").GetString());
        var ingress = (await JsonAsync("ingresses", "list", "-o", "json")).EnumerateArray().Single();
        Assert.Equal("shop-web", ingress.GetProperty("name").GetString());
        var route = ingress.GetProperty("routes").EnumerateArray().Single();
        Assert.Equal(web.GetProperty("id").GetString(), route.GetProperty("podId").GetString());
        Assert.Equal(80, route.GetProperty("port").GetInt32());

        var again = (await _cli.RunAsync("up", "-f", file)).ShouldSucceed();
        Assert.Contains("no changes", again.Stdout);
        Assert.Equal(pods.Select(p => p.GetProperty("id").GetString()).Order(), (await LivePodsAsync()).Select(p => p.GetProperty("id").GetString()).Order());
        Assert.Single((await JsonAsync("ingresses", "list", "-o", "json")).EnumerateArray());

        await File.WriteAllTextAsync(file, Compose(webReplicas: 3));
        var plan = JsonDocument.Parse((await _cli.RunAsync("up", "-f", file, "--wait", "-o", "json")).ShouldSucceed().Stdout).RootElement;
        var change = Assert.Single(plan.GetProperty("changes").EnumerateArray());
        Assert.Equal("update", change.GetProperty("action").GetString());
        Assert.Equal("web", change.GetProperty("name").GetString());
        Assert.Equal("replicas 2 → 3", change.GetProperty("detail").GetString());
        var scaled = await LivePodsAsync();
        Assert.Equal(pods.Select(p => p.GetProperty("id").GetString()).Order(), scaled.Select(p => p.GetProperty("id").GetString()).Order());
        Assert.Equal(3, scaled.Single(p => p.GetProperty("name").GetString() == "web").GetProperty("replicas").GetInt32());
        Assert.Equal(db.GetProperty("version").GetInt32(), scaled.Single(p => p.GetProperty("name").GetString() == "db").GetProperty("version").GetInt32());

        var down = (await _cli.RunAsync("down", "-f", file)).ShouldSucceed();
        Assert.Contains("- pod web", down.Stdout);
        Assert.Contains("- ingress shop-web", down.Stdout);
        Assert.DoesNotContain("volume", down.Stdout);
        Assert.Empty(await LivePodsAsync());
        Assert.Empty((await JsonAsync("ingresses", "list", "-o", "json")).EnumerateArray());
        Assert.Single((await JsonAsync("volumes", "list", "-o", "json")).EnumerateArray());

        var volumesDown = (await _cli.RunAsync("down", "-f", file, "--volumes")).ShouldSucceed();
        Assert.Contains("- volume shop-pgdata", volumesDown.Stdout);
        await Eventually.Until(async () => !(await JsonAsync("volumes", "list", "-o", "json")).EnumerateArray().Any(),
            TimeSpan.FromSeconds(60), "the volume was erased");
    }

    [Fact]
    public async Task a_privileged_service_is_refused_with_its_line_before_anything_is_created()
    {
        await _cli.LoginAsNewTenantAdminAsync(kraud);
        var file = await WriteAsync(Compose(webReplicas: 1, privileged: true));
        var refused = await _cli.RunAsync("up", "-f", file);
        Assert.Equal(1, refused.ExitCode);
        var privilegedLine = File.ReadAllLines(file).ToList().FindIndex(l => l.Contains("privileged")) + 1;
        Assert.Contains($"line {privilegedLine}: services.web.privileged: a pod is a microVM", refused.Stderr);
        Assert.StartsWith("error: VALIDATION: ", refused.Stderr);
        Assert.Empty(await LivePodsAsync());
        Assert.Empty((await JsonAsync("volumes", "list", "-o", "json")).EnumerateArray());
        Assert.Empty((await JsonAsync("ingresses", "list", "-o", "json")).EnumerateArray());
    }

    [Fact]
    public async Task a_file_that_breaks_the_compose_specification_is_refused_with_the_line()
    {
        var file = await WriteAsync("services:\n  web:\n    image: nginx\n    deploy:\n      replicas: many\n");
        var refused = await _cli.RunAsync("up", "-f", file);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("line 5: services.web.deploy.replicas: does not follow the Compose Specification", refused.Stderr);
    }

    public void Dispose() => _cli.Dispose();
}
