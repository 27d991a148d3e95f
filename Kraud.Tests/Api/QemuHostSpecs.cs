using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>The whole path with a real guest: GraphQL → scheduler → a host runtime process whose driver is qemu-microvm.</summary>
[Collection(ProcessFleetCollection.Name)]
public sealed class QemuHostSpecs(ProcessFleetApp app) : IClassFixture<QemuFixture>
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..12];

    /// <summary>A qemu-microvm host runtime process alone in a zone of its own, with small guests and its own state directory.</summary>
    private async Task<HostProcess> StartQemuHostAsync(string zone, string state)
    {
        var host = HostProcess.Start(app, Unique("q"), zone, driver: "qemu-microvm", environment: new Dictionary<string, string>
        {
            ["Fleet__Qemu__StateDirectory"] = state,
            ["Fleet__Qemu__GuestDirectory"] = QemuFixture.GuestDirectory,
            ["Fleet__Qemu__MaxMemoryMiB"] = "256",
            ["Fleet__Qemu__MaxCpus"] = "1",
            ["Fleet__Qemu__MaxEphemeralMiB"] = "64",
        });
        await host.WaitUntilRegisteredAsync(app);
        return host;
    }

    /// <summary>
    /// A STOPPED pod means its host saw QEMU exit: no process named after the VM may be alive then. On failure, the host
    /// runtime's last lines say what its stop did (a QEMU that survives SIGKILL is logged with its kernel state).
    /// </summary>
    private static async Task DeleteAndAssertQemuGoneAsync(TenantScope tenant, HostProcess host, string podId, Guid vmId)
    {
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = podId })).ShouldSucceed();
        try
        {
            await tenant.WaitForPodAsync(podId, "STOPPED", seconds: 60);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\n--- host {host.Name}:\n{host.OutputTail()}", e);
        }
        var alive = QemuFixture.QemuProcessesOf(vmId);
        Assert.True(alive.Count == 0, $"QEMU of microVM {vmId} is alive after its pod STOPPED: " +
            string.Join(", ", alive.Select(pid => $"pid {pid} ({ProcessExit.StateOf(pid)})")) + $"\n--- host {host.Name}:\n{host.OutputTail()}");
    }

    [Fact]
    public async Task a_pod_on_a_qemu_microvm_host_runs_in_a_real_guest_with_a_measured_boot_time_and_its_qemu_is_gone_after_delete()
    {
        var zone = Unique("qemu");
        var state = Path.Combine(Path.GetTempPath(), $"kraud-qemu-host-{Guid.NewGuid():N}");
        try
        {
            await using var host = await StartQemuHostAsync(zone, state);
            var tenant = await TenantScope.CreateAsync(app);

            var pod = await LongRunningPodAsync(tenant, "real", zone);
            var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 120);

            var instance = Assert.Single(running.Instances());
            Assert.Equal(host.Id.ToString(), instance.GetProperty("hostId").GetString());
            // A measured guest boot under QEMU, not the simulated driver's few milliseconds.
            Assert.InRange(instance.GetProperty("bootMs").GetDouble(), 300, 120_000);
            var vmId = Guid.Parse(instance.GetProperty("id").GetString()!);
            Assert.Single(QemuFixture.QemuProcessesOf(vmId));

            // Operators see how the host runs its guests, and why: this machine's probe decided it, and the host process
            // announced it (polled: the announcement comes from another process).
            var qemuHost = await Eventually.Get(async () =>
                    (await app.AsOperator("{ hosts { id accelerator acceleratorReason } }")).ShouldSucceed().Data.GetProperty("hosts")
                    .EnumerateArray().Single(h => h.GetProperty("id").GetString() == host.Id.ToString()),
                h => h.GetProperty("accelerator").ValueKind == System.Text.Json.JsonValueKind.String, TimeSpan.FromSeconds(60), "the host reported its accelerator");
            Assert.Contains(qemuHost.GetProperty("accelerator").GetString(), new[] { "KVM", "TCG" });
            Assert.False(string.IsNullOrWhiteSpace(qemuHost.GetProperty("acceleratorReason").GetString()));

            await DeleteAndAssertQemuGoneAsync(tenant, host, pod.Id(), vmId);
        }
        finally
        {
            StateDirectories.Remove(state);
        }
    }

    /// <summary>
    /// The issue's whole path: a registry the test starts, an image it builds and pushes (an entrypoint that prints a
    /// marker and its environment, a whited-out file), a pod of it on a qemu-microvm host through GraphQL and a second one
    /// through the real docker CLI; the marker in podLogs and docker logs, the digest on the pod and in docker inspect.
    /// </summary>
    [Fact]
    public async Task an_image_the_test_pushed_runs_in_a_real_guest_through_graphql_and_docker_run_and_a_second_pod_of_it_on_the_host_pulls_nothing()
    {
        var zone = Unique("qimg");
        var state = Path.Combine(Path.GetTempPath(), $"kraud-qemu-host-{Guid.NewGuid():N}");
        await using var registry = await TestRegistry.StartAsync();
        using var hello = await Kraud.Tests.HostRuntime.ImageRegistries.HelloAsync();
        var repository = $"e2e/hello-{Guid.NewGuid():N}"[..18];
        var digest = await hello.PushAsync(registry, $"{repository}:1");
        var image = $"{registry.HostPort}/{repository}:1";
        const string fields = "imageDigest state instances { id hostId state imageDownloadedBytes }";
        try
        {
            await using var host = await StartQemuHostAsync(zone, state);
            var tenant = await TenantScope.CreateAsync(app);

            var first = (await tenant.Gql($"mutation($in: CreatePodInput!) {{ createPod(input: $in) {{ id {fields} }} }}", new
            {
                @in = new { name = "hello", image, cpu = 1, memoryMiB = 256, zone, env = new Dictionary<string, string> { ["OVERRIDE"] = "graphql" } },
            })).ShouldSucceed().Data.GetProperty("createPod");
            Assert.Equal(digest, first.GetProperty("imageDigest").GetString());
            await tenant.WaitForPodAsync(first.Id(), "RUNNING", seconds: 180);
            var logs = await Eventually.Get(async () => (await tenant.Gql("query($id: ID!) { podLogs(podId: $id) { stream line } }", new { id = first.Id() }))
                    .ShouldSucceed().Data.GetProperty("podLogs").EnumerateArray().Select(l => $"{l.GetProperty("stream").GetString()} {l.GetProperty("line").GetString()}").ToList(),
                l => l.Any(x => x.Contains("OVERLAY-WRITABLE", StringComparison.Ordinal)), TimeSpan.FromSeconds(120), "the workload's lines reached podLogs");
            Assert.Contains("stdout HELLO-MARKER args=default-arg user=1000:1000 pwd=/app greeting=from-image override=graphql home=/home/app", logs);
            Assert.Contains("stdout WHITEOUT-HONOURED", logs);
            Assert.Contains("stderr to-stderr", logs);
            var firstVm = Assert.Single((await PodAsync(tenant, first.Id(), fields)).Instances());
            Assert.Equal(host.Id.ToString(), firstVm.GetProperty("hostId").GetString());
            Assert.True(firstVm.GetProperty("imageDownloadedBytes").GetDouble() > 1_000_000, "the first pod pulled the image's layers");

            using var docker = new DockerCli(app.DockerUrl, tenant.Token);
            var id = (await docker.RunAsync("run", "-d", "--name", "hello2", "-e", "OVERRIDE=docker", "-m", "256m", image, "from-docker")).ShouldSucceed().Output;
            await tenant.WaitForPodAsync(Guid.ParseExact(id, "N").ToString(), "RUNNING", seconds: 180);
            var second = await PodAsync(tenant, Guid.ParseExact(id, "N").ToString(), fields);
            Assert.Equal(digest, second.GetProperty("imageDigest").GetString());
            var secondVm = Assert.Single(second.Instances());
            Assert.Equal(host.Id.ToString(), secondVm.GetProperty("hostId").GetString());
            // The layers and the root file system are in the host's cache: the second pod of the image downloads nothing.
            Assert.Equal(0, secondVm.GetProperty("imageDownloadedBytes").GetDouble());

            var dockerLogs = await Eventually.Get(() => docker.RunAsync("logs", "hello2"), r => r.Output.Contains("OVERLAY-WRITABLE", StringComparison.Ordinal),
                TimeSpan.FromSeconds(120), "docker logs shows the workload's lines");
            Assert.Contains("HELLO-MARKER args=from-docker user=1000:1000 pwd=/app greeting=from-image override=docker home=/home/app", dockerLogs.Output);
            Assert.Equal("to-stderr", dockerLogs.Error);
            var ps = (await docker.RunAsync("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}")).ShouldSucceed().Output.Split('\n');
            Assert.Contains($"{id} hello2 {image} running", ps);
            Assert.Contains(ps, l => l.EndsWith($" hello {image} running", StringComparison.Ordinal));
            Assert.Equal(digest, (await docker.RunAsync("inspect", "--format", "{{.Image}}", "hello2")).ShouldSucceed().Output);

            var vm = Guid.Parse(secondVm.Id());
            (await docker.RunAsync("rm", "-f", "hello2")).ShouldSucceed();
            Assert.DoesNotContain("hello2", (await docker.RunAsync("ps", "-a", "--format", "{{.Names}}")).ShouldSucceed().Output.Split('\n'));
            await Eventually.Until(() => Task.FromResult(QemuFixture.QemuProcessesOf(vm).Count == 0), TimeSpan.FromSeconds(60), "the removed container's QEMU is gone");
            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = first.Id() })).ShouldSucceed();
            await tenant.WaitForPodAsync(first.Id(), "STOPPED", seconds: 60);
        }
        finally
        {
            StateDirectories.Remove(state);
        }
    }

    /// <summary>A pod whose workload keeps running: the image's own Cmd (sh) exits at once, and its microVM powers off with it.</summary>
    private static async Task<System.Text.Json.JsonElement> LongRunningPodAsync(TenantScope tenant, string name, string zone) =>
        (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }",
            new { @in = new { name, image = "nginx:1.27", cpu = 1, memoryMiB = 256, zone, command = new[] { "sleep", "3600" } } }))
        .ShouldSucceed().Data.GetProperty("createPod");

    private static async Task<System.Text.Json.JsonElement> PodAsync(TenantScope tenant, string id, string fields) =>
        (await tenant.Gql($"query($id: ID!) {{ pod(id: $id) {{ id {fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("pod");

    [Fact]
    public async Task when_the_qemu_of_a_running_pod_dies_its_replica_fails_with_the_console_tail_and_a_new_microvm_replaces_it()
    {
        var zone = Unique("qcrash");
        var state = Path.Combine(Path.GetTempPath(), $"kraud-qemu-host-{Guid.NewGuid():N}");
        try
        {
            await using var host = await StartQemuHostAsync(zone, state);
            var tenant = await TenantScope.CreateAsync(app);
            var pod = await LongRunningPodAsync(tenant, "doomed", zone);
            var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 120);
            var vmId = Guid.Parse(Assert.Single(running.Instances()).GetProperty("id").GetString()!);

            using (var qemu = System.Diagnostics.Process.GetProcessById(Assert.Single(QemuFixture.QemuProcessesOf(vmId)))) qemu.Kill();

            var failed = await tenant.WaitForPodAsync(pod.Id(), "FAILED", seconds: 60);
            Assert.Contains("exited unexpectedly", failed.GetProperty("reason").GetString());
            Assert.Contains("KRAUD-READY", failed.GetProperty("reason").GetString());

            // The reconciler boots a new generation after the back-off: a real guest again.
            var again = await tenant.WaitForPodAsync(pod.Id(),
                p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("id").GetString() != vmId.ToString()),
                TimeSpan.FromSeconds(120), "a new microVM runs");
            var fresh = Guid.Parse(Assert.Single(again.Instances()).GetProperty("id").GetString()!);
            Assert.Single(QemuFixture.QemuProcessesOf(fresh));
        }
        finally
        {
            StateDirectories.Remove(state);
        }
    }

    [Fact]
    public async Task a_pod_on_a_qemu_host_mounts_a_block_volume_of_storage_host_processes_as_a_disk_only_the_volume_key_opens()
    {
        var zone = Unique("qvol");
        var state = Path.Combine(Path.GetTempPath(), $"kraud-qemu-host-{Guid.NewGuid():N}");
        var storage = new List<HostProcess>();
        try
        {
            await using var host = await StartQemuHostAsync(zone, state);
            for (var i = 0; i < 3; i++) storage.Add(HostProcess.Start(app, Unique("s"), zone, role: "Storage", nvmeGiB: 100));
            foreach (var s in storage) await s.WaitUntilRegisteredAsync(app);
            // Simulated hosts run no hypervisor: nothing to accelerate.
            var hosts = (await app.AsOperator("{ hosts { id accelerator } }")).ShouldSucceed().Data.GetProperty("hosts").EnumerateArray().ToList();
            Assert.All(storage, s => Assert.Equal(System.Text.Json.JsonValueKind.Null,
                hosts.Single(h => h.GetProperty("id").GetString() == s.Id.ToString()).GetProperty("accelerator").ValueKind));
            var tenant = await TenantScope.CreateAsync(app);
            var volume = await tenant.WaitForVolumeAsync((await tenant.CreateVolumeAsync("realdisk", "BLOCK", 1, zone)).Id(), "HEALTHY", 180);
            Assert.Equal(storage.Select(s => s.Id.ToString()).Order(), volume.ReplicaHosts().Order());

            var marker = $"KRAUD-E2E-{Guid.NewGuid():N}";
            var pod = (await tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id } }", new
            {
                @in = new
                {
                    name = "writer", image = "busybox", cpu = 1, memoryMiB = 256, zone,
                    command = new[] { "sh", "-c", $"printf '%s' '{marker}' | dd of=/dev/vda conv=fsync 2>/dev/null && sync && echo written" },
                    volumes = new[] { new { volumeId = volume.Id(), mountPath = "/data" } },
                },
            })).ShouldSucceed().Data.GetProperty("createPod");
            var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 120);
            var vmId = Guid.Parse(Assert.Single(running.Instances()).Id());
            var console = Path.Combine(state, "hosts", host.Name, "console", $"{vmId}.log");
            await Eventually.Until(async () => File.Exists(console) && (await File.ReadAllTextAsync(console)).Contains("KRAUD-EXIT status=0"),
                TimeSpan.FromSeconds(120), "the guest wrote to the volume");

            // The disk QEMU opened is encrypted with the volume's data key: the one the storage hosts made, which the
            // control plane keeps only wrapped under the fleet's key-encryption key.
            var image = Path.Combine(state, "volumes", $"{volume.Id()}.luks");
            Assert.DoesNotContain(marker, System.Text.Encoding.ASCII.GetString(await File.ReadAllBytesAsync(image)));
            Kraud.Api.Volumes.VolumeKeyRecord record;
            await using (var session = app.Store.QuerySession())
                record = (await session.LoadAsync<Kraud.Api.Volumes.VolumeKeyRecord>(Guid.Parse(volume.Id())))!;
            var dataKey = Kraud.HostRuntime.Storage.KeyEncryptionKey.LoadOrCreate(HostProcess.KekFile(app)).Unwrap(record.Key);
            Assert.Equal(marker, await QemuFixture.DecryptedPrefixAsync(image, Convert.ToBase64String(dataKey), marker.Length));

            await DeleteAndAssertQemuGoneAsync(tenant, host, pod.Id(), vmId);
        }
        finally
        {
            foreach (var s in storage) await s.DisposeAsync();
            StateDirectories.Remove(state);
        }
    }
}
