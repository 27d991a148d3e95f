using Kraud.Api.Apps;
using Kraud.Domain.Access;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Microsoft.Extensions.Configuration;

namespace Kraud.Tests.Domain;

/// <summary>The YAML catalog, config checking and the app decider, without a database.</summary>
public sealed class AppCatalogSpecs : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 21, 0, 0, TimeSpan.Zero);
    private static readonly Guid Tenant = Guid.NewGuid();
    private static readonly Principal Admin = new("t1", Role.Admin, Tenant, "admin");
    private static readonly string[] Zones = ["fsn1-a", "fsn1-b"];
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"kraud-apps-{Guid.NewGuid():N}");

    private const string Echo = """
        name: echo
        version: 1.0.0
        displayName: Echo
        description: answers what it hears
        changelog: first
        config:
          - name: greeting
            kind: text
            default: hello
          - name: token
            kind: secret
            length: 16
        services:
          - name: echo
            image: "hashicorp/http-echo:1.0"
            command: [/http-echo, "-text={{ greeting }}"]
            env:
              TOKEN: "{{ token }}"
        """;

    private static AppCatalog Load(IDictionary<string, string?> settings) =>
        AppCatalog.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());

    [Fact]
    public void the_shipped_catalog_holds_postgresql_redis_and_nextcloud_and_a_directory_adds_more()
    {
        Directory.CreateDirectory(_directory);
        File.WriteAllText(Path.Combine(_directory, "echo-1.0.0.yaml"), Echo);
        var catalog = Load(new Dictionary<string, string?> { ["Apps:CatalogDirectory"] = _directory });
        Assert.Equal(["echo", "nextcloud", "postgresql", "redis"], catalog.All.Select(v => v[0].Name));
        var echo = catalog.Find("echo", "1.0.0");
        Assert.Equal(ConfigKind.Secret, echo.Field("token")!.Kind);
        Assert.Equal(2, catalog.Find("nextcloud", "30.0.2").Volumes.Count);
    }

    [Theory]
    [InlineData("kind: text", "kind: colour", "has kind 'colour'")]
    [InlineData("\"-text={{ greeting }}\"", "\"-text={{ token }}\"", "must not use the Secret field 'token'")]
    [InlineData("TOKEN: \"{{ token }}\"", "TOKEN: \"{{ nothing }}\"", "uses unknown field 'nothing'")]
    [InlineData("version: 1.0.0", "version: latest", "is not major.minor.patch")]
    public void a_broken_catalog_file_stops_the_start_naming_the_file_and_its_problem(string from, string to, string problem)
    {
        Directory.CreateDirectory(_directory);
        File.WriteAllText(Path.Combine(_directory, "echo.yaml"), Echo.Replace(from, to));
        var error = Assert.Throws<InvalidOperationException>(() => Load(new Dictionary<string, string?> { ["Apps:CatalogDirectory"] = _directory }));
        Assert.Contains("echo.yaml", error.Message);
        Assert.Contains(problem, error.Message);
    }

    private static AppTemplate Redis(string version = "7.2.6") => Load(new Dictionary<string, string?>()).Find("redis", version);

    [Fact]
    public void config_gets_defaults_and_generated_secrets_and_keeps_secret_values_apart()
    {
        var config = AppConfig.Resolve(Redis(), new Dictionary<string, string?> { ["zone"] = "fsn1-b" }, Zones, n => new string('x', n));
        Assert.Equal(new Dictionary<string, string> { ["eviction"] = "allkeys-lru", ["zone"] = "fsn1-b" }, config.Values);
        Assert.Equal(new string('x', 32), config.Secrets["password"]);
        Assert.Equal(["password"], config.Generated);
        var kept = AppConfig.Resolve(Redis("7.4.1"), new Dictionary<string, string?>(), Zones, _ => throw new InvalidOperationException("nothing to generate"),
            config.Values, new HashSet<string> { "password" });
        Assert.Empty(kept.Secrets);
        Assert.Equal("fsn1-b", kept.Values["zone"]);
    }

    [Fact]
    public void a_launch_plans_one_pod_per_service_in_the_chosen_zone_with_secrets_as_references()
    {
        var appId = Guid.NewGuid();
        var config = AppConfig.Resolve(Redis(), new Dictionary<string, string?> { ["zone"] = "fsn1-a" }, Zones, n => new string('s', n));
        var requested = Assert.IsType<AppLaunchRequested>(Assert.Single(AppDecider.Decide(
            new LaunchApp(appId, Tenant, "cache", "default", Redis(), config, AppCapabilities.PodsOnly, Admin, Now), AppInstance.Initial)));
        var pod = Assert.Single(requested.Rollout.Pods);
        Assert.Equal(("cache-redis-r1", "fsn1-a", "redis:7.2.6-alpine"), (pod.Spec.Name, pod.Spec.Zone, pod.Spec.Image));
        Assert.Equal($"${{secret:{appId:D}/password}}", pod.Spec.Env["REDIS_PASSWORD"]);
        Assert.Contains("--maxmemory-policy allkeys-lru", pod.Spec.Command[2]);
        Assert.DoesNotContain(new string('s', 32), System.Text.Json.JsonSerializer.Serialize(requested));
    }

    [Fact]
    public void an_upgrade_must_go_to_a_newer_version_one_at_a_time_and_a_failed_upgrade_leaves_the_app_running_its_old_version()
    {
        var appId = Guid.NewGuid();
        var config = AppConfig.Resolve(Redis(), new Dictionary<string, string?>(), Zones, n => new string('s', n));
        var app = Fold.Events<AppInstance>(AppDecider.Decide(new LaunchApp(appId, Tenant, "cache", "default", Redis(), config, AppCapabilities.PodsOnly, Admin, Now),
            AppInstance.Initial));
        app = app.Evolve(new AppRolloutSucceeded(appId, 1, Now));
        Assert.Equal((AppPhase.Running, "7.2.6"), (app.Phase, app.Version));

        var older = Assert.Throws<DomainException>(() => AppDecider.Decide(new UpgradeApp(appId, Redis(), [], config, AppCapabilities.PodsOnly, Admin, Now), app));
        Assert.Equal(ErrorCode.Validation, older.Code);
        var upgrade = Assert.IsType<AppUpgradeRequested>(Assert.Single(AppDecider.Decide(
            new UpgradeApp(appId, Redis("7.4.1"), [new ChangelogEntry("7.4.1", "fixes")], config, AppCapabilities.PodsOnly, Admin, Now), app)));
        Assert.Equal(2, upgrade.Rollout.Number);
        var upgrading = app.Evolve(upgrade);
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() =>
            AppDecider.Decide(new UpgradeApp(appId, Redis("7.4.1"), [], config, AppCapabilities.PodsOnly, Admin, Now), upgrading)).Code);

        var failed = upgrading.Evolve(new AppRolloutFailed(appId, 2, "service redis: boom", Now));
        Assert.Equal((AppPhase.Running, "7.2.6", "upgrade to 7.4.1 failed: service redis: boom"), (failed.Phase, failed.Version, failed.Reason));
        Assert.Equal(3, AppDecider.Decide(new UpgradeApp(appId, Redis("7.4.1"), [], config, AppCapabilities.PodsOnly, Admin, Now), failed)
            .OfType<AppUpgradeRequested>().Single().Rollout.Number);
    }

    [Fact]
    public void a_templates_volumes_are_created_before_the_pods_that_mount_them_and_its_ingress_after_routing_to_the_rollouts_pods()
    {
        var nextcloud = Load(new Dictionary<string, string?>()).Find("nextcloud", "30.0.2");
        var config = AppConfig.Resolve(nextcloud, new Dictionary<string, string?> { ["host"] = "cloud.example.com", ["files"] = "500" }, Zones, n => new string('p', n));
        var command = new LaunchApp(Guid.NewGuid(), Tenant, "files", "default", nextcloud, config, AppCapabilities.PodsOnly, Admin, Now);
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() => AppDecider.Decide(command, AppInstance.Initial)).Code);

        var launch = Assert.IsType<AppLaunchRequested>(Assert.Single(AppDecider.Decide(command with { Capabilities = AppCapabilities.All }, AppInstance.Initial)));
        var rollout = launch.Rollout;
        var files = rollout.VolumeParts.Single(v => v.Name == "files");
        Assert.Equal(("GFS", 500, new AppVolumeMount("web", "/var/www/html"), false), (files.Class, files.SizeGiB, Assert.Single(files.Mounts), files.Existing));
        Assert.Equal(10, rollout.VolumeParts.Single(v => v.Name == "db-data").SizeGiB);
        Assert.Equal(new AppIngressPart("cloud.example.com", "/", "web", 80), Assert.Single(rollout.Routes));
        var web = rollout.Pods.Single(p => p.Service == "web");
        Assert.Equal(new VolumeMount(files.VolumeId, "/var/www/html", false, VolumeClass.Gfs), Assert.Single(web.Spec.Mounts));

        var steps = AppRolloutSteps.Of(Fold.Events<AppInstance>([launch]));
        Assert.Equal(["volume files", "volume db-data", "service db", "service web", $"ingress files-{command.AppId:N}"[..22]], steps.Select(s => s.Part));
        var ingress = Assert.IsType<CreateAppIngress>(steps[^1]);
        Assert.Equal(web.PodId, Assert.Single(ingress.Routes).PodId);
    }

    [Fact]
    public void an_upgrade_keeps_the_apps_volumes_and_stops_the_pod_holding_a_block_volume_before_its_new_version_starts()
    {
        var catalog = Load(new Dictionary<string, string?>());
        var (v16_4, v16_6) = (catalog.Find("postgresql", "16.4.0"), catalog.Find("postgresql", "16.6.0"));
        var appId = Guid.NewGuid();
        var config = AppConfig.Resolve(v16_4, new Dictionary<string, string?> { ["storage"] = "5" }, Zones, n => new string('p', n));
        var app = Fold.Events<AppInstance>(AppDecider.Decide(new LaunchApp(appId, Tenant, "db", "default", v16_4, config, AppCapabilities.All, Admin, Now),
            AppInstance.Initial)).Evolve(new AppRolloutSucceeded(appId, 1, Now));
        var volume = Assert.Single(app.Volumes);

        var kept = AppConfig.Resolve(v16_6, new Dictionary<string, string?>(), Zones, _ => "", app.Config, app.SecretFields.ToHashSet());
        var upgrade = Assert.IsType<AppUpgradeRequested>(Assert.Single(AppDecider.Decide(new UpgradeApp(appId, v16_6, [], kept, AppCapabilities.All, Admin, Now), app)));
        var rollout = upgrade.Rollout;
        var keptVolume = Assert.Single(rollout.VolumeParts);
        Assert.Equal((volume.VolumeId, volume.SizeGiB, true), (keptVolume.VolumeId, keptVolume.SizeGiB, keptVolume.Existing));
        Assert.Equal(volume.VolumeId, Assert.Single(Assert.Single(rollout.Pods).Spec.Mounts).VolumeId);
        Assert.Equal(["postgres"], rollout.StoppedFirst);
        Assert.Contains("downtime: postgres stopped before 16.6.0 starts", rollout.DowntimeNote);
        var steps = AppRolloutSteps.Of(app.Evolve(upgrade));
        Assert.Equal(app.Parts[0].PodId, Assert.IsType<StopOldPod>(steps[0]).Pod.PodId);
        Assert.Equal(rollout.Pods[0].PodId, Assert.IsType<CreateAppPod>(Assert.Single(steps.Skip(1))).Pod.PodId);

        // The restored pod takes the old one's place among the app's parts; the volume stays the app's.
        var restored = app.Parts[0] with { PodId = Guid.NewGuid() };
        var failed = app.Evolve(upgrade).Evolve(new AppRolloutFailed(appId, 2, "service postgres: boom", Now, [restored]));
        Assert.Equal((AppPhase.Running, "16.4.0", restored.PodId, volume.VolumeId), (failed.Phase, failed.Version, Assert.Single(failed.Parts).PodId,
            Assert.Single(failed.Volumes).VolumeId));

        var grown = AppConfig.Resolve(v16_6, new Dictionary<string, string?> { ["storage"] = "50" }, Zones, _ => "", app.Config, app.SecretFields.ToHashSet());
        var refused = Assert.Throws<DomainException>(() => AppDecider.Decide(new UpgradeApp(appId, v16_6, [], grown, AppCapabilities.All, Admin, Now), app));
        Assert.Equal(ErrorCode.Precondition, refused.Code);
        Assert.Contains("cannot resize volumes", refused.Message);
    }

    [Theory]
    [InlineData("replicas: 1", "replicas: 2", "BLOCK volume 'data' attaches to one microVM")]
    [InlineData("data", "Data", "volume name 'Data' is not a valid name")]
    public void a_template_whose_block_volume_would_need_two_microvms_or_whose_volume_name_is_not_a_label_is_refused(string from, string to, string problem)
    {
        const string template = """
            name: kv
            version: 1.0.0
            services:
              - name: kv
                image: "example/kv:1"
                replicas: 1
                volumes:
                  - volume: data
                    mountPath: /data
            volumes:
              - name: data
                class: BLOCK
                sizeGiB: "5"
            """;
        var error = Assert.Throws<InvalidOperationException>(() => AppCatalog.Parse(template.Replace(from, to), "kv.yaml"));
        Assert.Contains(problem, error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
    }
}
