using System.Collections.Concurrent;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Images;
using Kraud.HostRuntime.Logs;
using Kraud.HostRuntime.Storage;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Kraud.Tests.HostRuntime;

/// <summary>The registries and images the image specs share: one anonymous registry, one behind htpasswd, one behind token auth.</summary>
public sealed class ImageRegistries : IAsyncLifetime
{
    public TestRegistry Anonymous { get; private set; } = null!;
    public TestRegistry Basic { get; private set; } = null!;
    public TestRegistry Token { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var started = await Task.WhenAll(TestRegistry.StartAsync(), TestRegistry.StartAsync("htpasswd"), TestRegistry.StartAsync("token"));
        (Anonymous, Basic, Token) = (started[0], started[1], started[2]);
    }

    public async Task DisposeAsync()
    {
        foreach (var registry in new[] { Anonymous, Basic, Token }.Where(r => r is not null)) await registry.DisposeAsync();
    }

    /// <summary>Options that reach all three over plain HTTP.</summary>
    public RegistryOptions Options() => new() { InsecureRegistries = [.. Anonymous.Insecure, .. Basic.Insecure, .. Token.Insecure] };

    /// <summary>
    /// The image most specs run: busybox, then a layer with the entrypoint and a file a third layer whites out. It prints a
    /// marker with its arguments, user, directory and environment, says whether the whited-out file is gone, writes to
    /// stderr and to its writable root, then sleeps (or exits with $EXIT_WITH when set).
    /// </summary>
    public static async Task<TestImage> HelloAsync()
    {
        var image = await TestImage.BusyboxAsync();
        await image.AddFileAsync("/app/hello.sh", """
            #!/bin/sh
            echo "HELLO-MARKER args=$* user=$(id -u):$(id -g) pwd=$(pwd) greeting=$GREETING override=$OVERRIDE home=$HOME"
            if [ -e /app/secret.txt ]; then echo "WHITEOUT-IGNORED"; else echo "WHITEOUT-HONOURED"; fi
            echo "to-stderr" >&2
            echo written > /tmp/by-workload && echo "OVERLAY-WRITABLE $(cat /tmp/by-workload)"
            if [ -n "$EXIT_WITH" ]; then exit "$EXIT_WITH"; fi
            exec sleep 3600
            """, executable: true);
        await image.AddFileAsync("/app/secret.txt", "should be gone");
        await image.WhiteoutAsync("/app/secret.txt");
        await image.ConfigAsync(entrypoint: ["/app/hello.sh"], cmd: ["default-arg"], workdir: "/app", user: "app",
            env: new Dictionary<string, string> { ["GREETING"] = "from-image", ["OVERRIDE"] = "image", ["PATH"] = "/bin" });
        return image;
    }
}

[CollectionDefinition(Name)]
public sealed class QemuImageCollection : ICollectionFixture<QemuFixture>, ICollectionFixture<ImageRegistries>
{
    public const string Name = "Real microVMs running OCI images";
}

/// <summary>The qemu-microvm driver runs OCI images: pulled from a real registry, unpacked, booted; no control plane.</summary>
[Collection(QemuImageCollection.Name)]
public sealed class QemuImageSpecs(QemuFixture qemu, ImageRegistries registries, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _drivers = [];
    private readonly List<IDisposable> _disposables = [];
    private readonly string _kek = Path.Combine(Path.GetTempPath(), $"kraud-test-kek-{Guid.NewGuid():N}");

    private sealed class CollectingSink : IWorkloadLogSink
    {
        public ConcurrentQueue<WorkloadLogLine> Lines { get; } = new();
        public void Enqueue(WorkloadLogLine line) => Lines.Enqueue(line);
    }

    private (QemuMicroVmDriver Driver, ImageCache Cache, CollectingSink Logs, SealingKeyPair Sealing, ImagePuller Puller) ImageDriver(long capBytes = 1L << 30)
    {
        var options = qemu.Options();
        var host = $"qimg-{Guid.NewGuid():N}"[..13];
        var cache = new ImageCache(QemuMicroVmDriver.ImageCacheDirectory(options, host), capBytes);
        var puller = new ImagePuller(new DistributionClient(registries.Options()), cache, new RootfsBuilder(options, NullLogger.Instance), NullLogger.Instance);
        var sealing = SealingKeyPair.From(KeyEncryptionKey.LoadOrCreate(_kek));
        _disposables.Add(sealing);
        var sink = new CollectingSink();
        var driver = QemuMicroVmDriver.Start(options, host, NullLogger.Instance, new WorkloadServices(puller, sealing, sink));
        _drivers.Add(driver);
        return (driver, cache, sink, sealing, puller);
    }

    private static MicroVmSpec Spec(OciImage image, IReadOnlyDictionary<string, string>? env = null, params string[] command) =>
        QemuFixture.Spec(0, command) with { Oci = image, Env = env ?? new Dictionary<string, string>() };

    private static Task<string> WaitForLogAsync(QemuMicroVmDriver driver, Guid vmId, string text) => QemuFixture.WaitForWorkloadLogAsync(driver, vmId, text);

    [Fact]
    public async Task an_image_from_a_registry_runs_its_entrypoint_as_its_user_in_its_workdir_with_the_pods_command_and_env_over_the_images_and_honours_whiteouts()
    {
        using var image = await ImageRegistries.HelloAsync();
        var repository = $"test/hello-{Guid.NewGuid():N}"[..20];
        var digest = await image.PushAsync(registries.Anonymous, $"{repository}:1");
        var (driver, cache, sink, _, _) = ImageDriver();
        var spec = Spec(new OciImage(registries.Anonymous.HostPort, repository, digest), new Dictionary<string, string> { ["OVERRIDE"] = "pod" }, "from-pod");

        var boot = await driver.BootAsync(spec, CancellationToken.None);

        output.WriteLine($"boot with a cold pull: {boot.BootMs:F0} ms, {boot.DownloadedBytes} bytes downloaded");
        Assert.Equal(digest, boot.ImageDigest);
        Assert.True(boot.DownloadedBytes > 1_000_000, "busybox alone is more than a megabyte");
        var log = await WaitForLogAsync(driver, spec.VmId, "OVERLAY-WRITABLE");
        output.WriteLine(log);
        Assert.Matches(@"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z stdout F HELLO-MARKER args=from-pod user=1000:1000 pwd=/app greeting=from-image override=pod home=/home/app$", log);
        Assert.Contains("stdout F WHITEOUT-HONOURED", log);
        Assert.Matches(@"(?m)^\S+ stderr F to-stderr$", log);
        Assert.Contains("stdout F OVERLAY-WRITABLE written", log);
        Assert.Contains(sink.Lines, l => l.Stream == "stderr" && l.Line == "to-stderr" && l.VmId == spec.VmId && l.PodId == spec.PodId && l.TenantId == spec.TenantId);
        // The workload's lines are its own: nothing of them on the serial console, which the kernel and /init use.
        Assert.DoesNotContain("HELLO-MARKER", await File.ReadAllTextAsync(driver.ConsoleLogOf(spec.VmId)));
        Assert.True(cache.HasRootfs(digest));

        // A second microVM of the image on this host downloads nothing and builds nothing.
        var second = Spec(new OciImage(registries.Anonymous.HostPort, repository, digest), null, "again");
        var again = await driver.BootAsync(second, CancellationToken.None);
        Assert.Equal(0, again.DownloadedBytes);
        Assert.Contains("HELLO-MARKER args=again", await WaitForLogAsync(driver, second.VmId, "HELLO-MARKER"));

        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
        Assert.True(await driver.StopAsync(second.VmId, CancellationToken.None));
        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
    }

    [Fact]
    public async Task the_microvm_whose_pull_builds_the_image_boots_meanwhile_and_runs_the_image_once_it_is_built()
    {
        using var image = await ImageRegistries.HelloAsync();
        var repository = $"test/early-{Guid.NewGuid():N}"[..20];
        var digest = await image.PushAsync(registries.Anonymous, $"{repository}:1");
        var (driver, cache, _, _, puller) = ImageDriver();
        var spec = Spec(new OciImage(registries.Anonymous.HostPort, repository, digest));
        int? qemuWhenBuilt = null;
        puller.Built += _ => qemuWhenBuilt = driver.ProcessIdOf(spec.VmId);

        var boot = await driver.BootAsync(spec, CancellationToken.None);

        Assert.NotNull(qemuWhenBuilt);
        Assert.Equal(driver.ProcessIdOf(spec.VmId), qemuWhenBuilt);
        Assert.Equal(digest, boot.ImageDigest);
        Assert.Contains("WHITEOUT-HONOURED", await WaitForLogAsync(driver, spec.VmId, "WHITEOUT-"));
        // QEMU saw a larger disk than the image: the finished file is the image alone, as every later microVM sees it.
        Assert.InRange(new FileInfo(cache.RootfsPath(digest)).Length, 1, 64L << 20);
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    [Fact]
    public async Task a_workload_that_exits_is_reported_as_an_exit_with_its_code_and_time_not_as_a_crash_and_its_vm_never_boots_again()
    {
        using var image = await ImageRegistries.HelloAsync();
        var repository = $"test/exit-{Guid.NewGuid():N}"[..19];
        var digest = await image.PushAsync(registries.Anonymous, $"{repository}:1");
        var (driver, _, _, _, _) = ImageDriver();
        var exited = new TaskCompletionSource<MicroVmExit>(TaskCreationOptions.RunContinuationsAsynchronously);
        var crashed = false;
        driver.Exited += e => exited.TrySetResult(e);
        driver.Crashed += _ => crashed = true;
        var spec = Spec(new OciImage(registries.Anonymous.HostPort, repository, digest), new Dictionary<string, string> { ["EXIT_WITH"] = "3" });
        var before = DateTimeOffset.UtcNow;

        await driver.BootAsync(spec, CancellationToken.None);
        var exit = await exited.Task.WaitAsync(TimeSpan.FromSeconds(90));

        Assert.Equal((spec.VmId, spec.PodId, 3), (exit.VmId, exit.PodId, exit.ExitCode));
        Assert.InRange(exit.ExitedAt, before, DateTimeOffset.UtcNow);
        Assert.False(crashed);
        Assert.Empty(driver.Running);
        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
        // Its last lines were read before the exit was raised.
        Assert.Contains("OVERLAY-WRITABLE", await File.ReadAllTextAsync(driver.WorkloadLogOf(spec.VmId)));

        // Its boot command delivered again (at least once) starts no second guest that would hold the pod's disks.
        Assert.Contains("already ran on this host and ended",
            (await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(spec, CancellationToken.None))).Message);
        Assert.Empty(QemuFixture.QemuProcessesOf(spec.VmId));
    }

    [Fact]
    public async Task a_private_image_is_pulled_with_the_tenants_credential_sealed_for_the_host_and_refused_without_it()
    {
        using var image = await ImageRegistries.HelloAsync();
        var repository = $"private/hello-{Guid.NewGuid():N}"[..22];
        var digest = await image.PushAsync(registries.Basic, $"{repository}:1");
        var (driver, cache, _, sealing, _) = ImageDriver();
        var tenant = Guid.NewGuid();
        var login = registries.Basic.Login!;
        var sealedPassword = SecretSealing.Seal(sealing.Public, System.Text.Encoding.UTF8.GetBytes(login.Password),
            SecretSealing.RegistryCredentialContext(tenant, registries.Basic.HostPort));
        var credential = new SealedRegistryCredential(registries.Basic.HostPort, login.Username, sealedPassword);

        var anonymous = Spec(new OciImage(registries.Basic.HostPort, repository, digest)) with { TenantId = tenant };
        var refused = await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(anonymous, CancellationToken.None));
        Assert.Contains("requires credentials", refused.Message);
        // Its QEMU had started on the file of the image to be built: both are gone with the failed pull.
        Assert.Empty(QemuFixture.QemuProcessesOf(anonymous.VmId));
        Assert.False(File.Exists(cache.RootfsPath(digest)));

        // Sealed for another tenant's pod, the same credential does not open.
        var stolen = Spec(new OciImage(registries.Basic.HostPort, repository, digest, credential));
        Assert.Contains("cannot open the registry credential", (await Assert.ThrowsAsync<MicroVmBootException>(() => driver.BootAsync(stolen, CancellationToken.None))).Message);

        var spec = Spec(new OciImage(registries.Basic.HostPort, repository, digest, credential)) with { TenantId = tenant };
        var boot = await driver.BootAsync(spec, CancellationToken.None);
        Assert.Equal(digest, boot.ImageDigest);
        await WaitForLogAsync(driver, spec.VmId, "HELLO-MARKER args=default-arg");
        Assert.DoesNotContain(login.Password, await File.ReadAllTextAsync($"/proc/{driver.ProcessIdOf(spec.VmId)!.Value}/cmdline"));
        Assert.True(await driver.StopAsync(spec.VmId, CancellationToken.None));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var driver in _drivers) await driver.DisposeAsync();
        foreach (var d in _disposables) d.Dispose();
        if (File.Exists(_kek)) File.Delete(_kek);
    }
}
