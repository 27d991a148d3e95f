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

    [Fact]
    public async Task a_pod_on_a_qemu_microvm_host_runs_in_a_real_guest_with_a_measured_boot_time_and_its_qemu_is_gone_after_delete()
    {
        var zone = Unique("qemu");
        var state = Path.Combine(Path.GetTempPath(), $"kraud-qemu-host-{Guid.NewGuid():N}");
        try
        {
            await using var host = await StartQemuHostAsync(zone, state);
            var tenant = await TenantScope.CreateAsync(app);

            var pod = await tenant.CreatePodAsync("real", zone: zone);
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

            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
            await tenant.WaitForPodAsync(pod.Id(), "STOPPED", seconds: 60);
            Assert.Empty(QemuFixture.QemuProcessesOf(vmId));
        }
        finally
        {
            if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
        }
    }

    [Fact]
    public async Task when_the_qemu_of_a_running_pod_dies_its_replica_fails_with_the_console_tail_and_a_new_microvm_replaces_it()
    {
        var zone = Unique("qcrash");
        var state = Path.Combine(Path.GetTempPath(), $"kraud-qemu-host-{Guid.NewGuid():N}");
        try
        {
            await using var host = await StartQemuHostAsync(zone, state);
            var tenant = await TenantScope.CreateAsync(app);
            var pod = await tenant.CreatePodAsync("doomed", zone: zone);
            var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 120);
            var vmId = Guid.Parse(Assert.Single(running.Instances()).GetProperty("id").GetString()!);

            using (var qemu = System.Diagnostics.Process.GetProcessById(Assert.Single(QemuFixture.QemuProcessesOf(vmId)))) qemu.Kill();

            var failed = await tenant.WaitForPodAsync(pod.Id(), "FAILED", seconds: 60);
            Assert.Contains("exited unexpectedly", failed.GetProperty("reason").GetString());
            Assert.Contains("KRAUD-READY", failed.GetProperty("reason").GetString());

            // The reconciler boots a new generation after the back-off: a real guest again.
            var again = await Eventually.Get(async () => (await tenant.PodAsync(pod.Id()))!.Value,
                p => p.State() == "RUNNING" && p.Instances().All(i => i.GetProperty("id").GetString() != vmId.ToString()),
                TimeSpan.FromSeconds(120), "a new microVM runs");
            var fresh = Guid.Parse(Assert.Single(again.Instances()).GetProperty("id").GetString()!);
            Assert.Single(QemuFixture.QemuProcessesOf(fresh));
        }
        finally
        {
            if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
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

            (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
            await tenant.WaitForPodAsync(pod.Id(), "STOPPED", seconds: 60);
            Assert.Empty(QemuFixture.QemuProcessesOf(vmId));
        }
        finally
        {
            foreach (var s in storage) await s.DisposeAsync();
            if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
        }
    }
}
