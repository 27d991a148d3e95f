using System.Text.Json;
using Kraud.Domain.Pods;
using Kraud.HostRuntime.Logs;
using Kraud.Projections.Pods;
using Kraud.Tests.Infrastructure;
using Marten;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

/// <summary>The real docker CLI against Kraud's Docker Engine API, on the simulated fleet.</summary>
[Collection(ApiCollection.Name)]
public sealed class DockerApiSpecs(KraudApp app) : IAsyncLifetime
{
    private readonly SpecTenants _tenants = new(app);

    public Task InitializeAsync() => _tenants.InitializeAsync();

    public Task DisposeAsync() => _tenants.DisposeAsync();

    private async Task<(TenantScope Tenant, DockerCli Docker)> TenantWithDockerAsync()
    {
        var tenant = await _tenants.NewAsync();
        return (tenant, new DockerCli(app.DockerUrl, tenant.Token));
    }

    private async Task<PodView> PodAsync(string id)
    {
        await using var session = app.Store.QuerySession();
        return (await session.LoadAsync<PodView>(Guid.ParseExact(id, "N")))!;
    }

    [Fact]
    public async Task docker_run_creates_a_pod_as_create_pod_would_and_ps_inspect_logs_stop_start_restart_and_rm_work_on_it()
    {
        var (tenant, docker) = await TenantWithDockerAsync();
        using var _ = docker;

        var id = (await docker.RunAsync("run", "-d", "--name", "web", "-e", "K=V", "--cpus", "1", "-m", "256m", "nginx:1.27", "sleep", "3600")).ShouldSucceed().Output;

        var pod = await PodAsync(id);
        Assert.Equal(("web", "nginx:1.27", 1, 256), (pod.Name, pod.Pod.Spec.Image, pod.Pod.Spec.Cpu, pod.Pod.Spec.MemoryMiB));
        Assert.Equal(["sleep", "3600"], pod.Pod.Spec.Command);
        Assert.Equal("V", pod.Pod.Spec.Env["K"]);
        Assert.Equal(tenant.Id, pod.TenantId);
        // The same facts as a GraphQL createPod, and the same audit entry.
        var viaGraphQL = await tenant.CreatePodAsync("twin", image: "nginx:1.27");
        Assert.Equal((await app.EventsOf(Guid.Parse(viaGraphQL.Id()))).Take(2).Select(e => e.EventType),
            (await app.EventsOf(pod.Id)).Take(2).Select(e => e.EventType));
        Assert.Equal("CreatePod", (await app.EventsOf(pod.Id))[0].Headers![Kraud.Projections.Audit.AuditHeaders.Command].ToString());
        await tenant.WaitForPodAsync(pod.Id.ToString(), "RUNNING");
        pod = await PodAsync(id);

        var ps = (await docker.RunAsync("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.Status}}")).ShouldSucceed().Output;
        Assert.Contains($"{id} web nginx:1.27 running Up", ps);
        var inspect = JsonDocument.Parse((await docker.RunAsync("inspect", "web")).ShouldSucceed().Output).RootElement[0];
        Assert.Equal(pod.Pod.Image!.Digest, inspect.GetProperty("Image").GetString());
        Assert.True(inspect.GetProperty("State").GetProperty("Running").GetBoolean());
        Assert.Equal("/web", inspect.GetProperty("Name").GetString());

        var shipper = app.Host.Services.GetRequiredService<WorkloadLogShipper>();
        var vm = pod.Pod.Instances[0].VmId;
        shipper.Enqueue(new WorkloadLogLine(tenant.Id, pod.Id, vm, 0, DateTimeOffset.UtcNow, "stdout", "hello from web"));
        shipper.Enqueue(new WorkloadLogLine(tenant.Id, pod.Id, vm, 0, DateTimeOffset.UtcNow, "stderr", "a warning"));
        await shipper.FlushAsync(CancellationToken.None);
        var logs = (await docker.RunAsync("logs", "web")).ShouldSucceed();
        Assert.Equal("hello from web", logs.Output);
        Assert.Equal("a warning", logs.Error);
        Assert.Equal("a warning", (await docker.RunAsync("logs", "--tail", "1", id[..12])).ShouldSucceed().Error);
        Assert.Contains("followed line", await FollowWhileShippingAsync(docker, shipper, tenant, pod, vm));

        (await docker.RunAsync("stop", "web")).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id.ToString(), "STOPPED");
        Assert.DoesNotContain("web", (await docker.RunAsync("ps", "--format", "{{.Names}}")).ShouldSucceed().Output.Split('\n'));
        Assert.Contains("web exited", (await docker.RunAsync("ps", "-a", "--format", "{{.Names}} {{.State}}")).ShouldSucceed().Output);
        (await docker.RunAsync("start", "web")).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id.ToString(), "RUNNING");
        (await docker.RunAsync("restart", "web")).ShouldSucceed();
        Assert.Contains((await app.EventsOf(pod.Id)).Select(e => e.Data), e => e is PodRestarted);

        var refused = await docker.RunAsync("rm", "web");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("You cannot remove a running container", refused.Error);
        (await docker.RunAsync("rm", "-f", "web")).ShouldSucceed();
        Assert.DoesNotContain("web", (await docker.RunAsync("ps", "-a", "--format", "{{.Names}}")).ShouldSucceed().Output.Split('\n'));
        Assert.Contains("No such container: web", (await docker.RunAsync("inspect", "--type", "container", "web")).Error);
        await tenant.WaitForPodAsync(pod.Id.ToString(), "STOPPED");
        // The collection's fleet is shared: what this spec made does not hold capacity the next specs need (N+2).
        (await docker.RunAsync("rm", "-f", "twin")).ShouldSucceed();
    }

    private static async Task<string> FollowWhileShippingAsync(DockerCli docker, WorkloadLogShipper shipper, TenantScope tenant, PodView pod, Guid vm)
    {
        using var stop = new CancellationTokenSource();
        var shipping = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(300);
                shipper.Enqueue(new WorkloadLogLine(tenant.Id, pod.Id, vm, 0, DateTimeOffset.UtcNow, "stdout", "followed line"));
                await shipper.FlushAsync(CancellationToken.None);
            }
        });
        try
        {
            return await docker.FollowUntilAsync("web", "followed line", TimeSpan.FromSeconds(30));
        }
        finally
        {
            await stop.CancelAsync();
            await shipping;
        }
    }

    [Theory]
    [InlineData("--publish", "-p", "8080:80")]
    [InlineData("--volume", "-v", "/srv:/srv")]
    [InlineData("--privileged", "--privileged")]
    [InlineData("--restart", "--restart", "always")]
    [InlineData("--entrypoint", "--entrypoint", "/bin/true")]
    [InlineData("--user", "-u", "1000")]
    [InlineData("--tty", "-t")]
    [InlineData("--label", "-l", "team=a")]
    public async Task an_unsupported_docker_run_flag_is_refused_naming_it_and_nothing_is_created(string named, params string[] flag)
    {
        var (tenant, docker) = await TenantWithDockerAsync();
        using var _ = docker;
        var before = await tenant.EventCountAsync();

        var refused = await docker.RunAsync(["run", "-d", .. flag, "nginx:1.27"]);

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Error response from daemon", refused.Error);
        Assert.Contains(named, refused.Error);
        Assert.Contains("not supported by Kraud", refused.Error);
        Assert.Equal(before, await tenant.EventCountAsync());
    }

    [Fact]
    public async Task docker_run_attached_prints_the_workloads_stdout_and_stderr_until_it_exits_and_exits_with_its_code()
    {
        var (tenant, docker) = await TenantWithDockerAsync();
        using var _ = docker;
        var name = $"once-{Guid.NewGuid():N}"[..12];

        var run = docker.RunAsync("run", "--name", name, "nginx:1.27", "sh", "-c", "echo attached; exit 3");

        var pod = await Eventually.Get(async () =>
        {
            await using var session = app.Store.QuerySession();
            return await session.Query<PodView>().Where(p => p.TenantId == tenant.Id && p.Name == name).SingleOrDefaultAsync();
        }, p => p is not null, TimeSpan.FromSeconds(60), "docker run created the pod");
        var running = await tenant.WaitForPodAsync(pod!.Id.ToString(), "RUNNING");
        var vm = Guid.Parse(Assert.Single(running.Instances()).Id());
        // The simulated host plays the workload: two lines, then the exit the command would make.
        var shipper = app.Host.Services.GetRequiredService<WorkloadLogShipper>();
        shipper.Enqueue(new WorkloadLogLine(tenant.Id, pod.Id, vm, 0, DateTimeOffset.UtcNow, "stdout", "attached"));
        shipper.Enqueue(new WorkloadLogLine(tenant.Id, pod.Id, vm, 0, DateTimeOffset.UtcNow, "stderr", "attached warning"));
        await shipper.FlushAsync(CancellationToken.None);
        Assert.False(run.IsCompleted, "docker run stays attached while the workload runs");
        Assert.True(app.Drivers.Single(d => d.Running.Contains(vm)).ExitWorkload(vm, 3));

        var result = await run.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True((result.ExitCode, result.Output) == (3, "attached"), $"docker run exited {result.ExitCode}: {result.Output} {result.Error}");
        Assert.Equal("attached warning", result.Error);
        Assert.Contains((await app.EventsOf(pod.Id)).Select(e => e.Data), e => e is PodReplicaExited { ExitCode: 3 });
        (await docker.RunAsync("rm", "-f", name)).ShouldSucceed();
    }

    [Fact]
    public async Task docker_run_with_stdin_is_refused_naming_the_flag_and_nothing_is_created()
    {
        var (tenant, docker) = await TenantWithDockerAsync();
        using var _ = docker;
        var before = await tenant.EventCountAsync();

        var refused = await docker.RunAsync("run", "-i", "nginx:1.27", "echo", "hi");

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("--interactive (-i)", refused.Error);
        Assert.Contains("not supported by Kraud", refused.Error);
        Assert.Equal(before, await tenant.EventCountAsync());
    }

    [Fact]
    public async Task docker_run_answers_with_kraud_errors_and_other_tenants_containers_are_not_found()
    {
        var (tenant, docker) = await TenantWithDockerAsync();
        using var _ = docker;
        var missing = await docker.RunAsync("run", "-d", $"no-such-image-{Guid.NewGuid():N}:1");
        Assert.Contains("VALIDATION", missing.Error);
        Assert.Contains("does not exist", missing.Error);
        Assert.Contains("--cpus 0.5 is not supported by Kraud", (await docker.RunAsync("run", "-d", "--cpus", "0.5", "nginx:1.27")).Error);

        var id = (await docker.RunAsync("run", "-d", "--name", "mine", "nginx:1.27")).ShouldSucceed().Output;
        var (_, stranger) = await TenantWithDockerAsync();
        using var __ = stranger;
        Assert.Contains("No such container", (await stranger.RunAsync("logs", id)).Error);
        Assert.Contains("No such container", (await stranger.RunAsync("rm", "-f", "mine")).Error);
        Assert.DoesNotContain("mine", (await stranger.RunAsync("ps", "-a", "--format", "{{.Names}}")).ShouldSucceed().Output);

        var version = (await docker.RunAsync("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}")).ShouldSucceed().Output;
        Assert.Equal("kraud-1 1.41", version);
        Assert.Contains("Containers: 1", (await docker.RunAsync("info")).Output);
        (await docker.RunAsync("rm", "-f", "mine")).ShouldSucceed();
        var noToken = new DockerCli(app.DockerUrl, "krd_not_a_token");
        using var ___ = noToken;
        Assert.Contains("Kraud needs a tenant API token", (await noToken.RunAsync("ps")).Error);
    }
}
