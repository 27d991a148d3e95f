using System.Diagnostics;
using Kraud.Domain.Fleet;
using Kraud.Projections.Fleet;
using Kraud.Tests.Infrastructure;
using Marten;

namespace Kraud.Tests.Api;

/// <summary>A host runtime in its own process reaches the control plane through the same PostgreSQL queues as the in-process fleet.</summary>
[Collection(ApiCollection.Name)]
public sealed class HostRuntimeProcessSpecs(KraudApp app) : IAsyncLifetime
{
    private Process? _process;
    private readonly string _workDir = Path.Combine(Path.GetTempPath(), $"kraud-host-{Guid.NewGuid():N}");
    private readonly string _hostName = $"fsn1-p-{Guid.NewGuid():N}"[..14];

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_workDir);
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = _workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList = { HostRuntimeDll(), "--host", _hostName, "--zone", "fsn1-p", "--rack", "p1", "--role", "Compute", "--cpu", "4", "--memory-mib", "8192" },
            Environment = { ["KRAUD_DATABASE"] = app.ConnectionString, ["Fleet__SimulatedBootDelayMs"] = "10" },
        };
        _process = Process.Start(start)!;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task a_standalone_host_runtime_registers_itself_boots_the_pods_placed_on_it_and_stops_them()
    {
        var hostId = Host.IdFor(_hostName);
        await Eventually.Until(async () =>
        {
            await using var session = app.Store.QuerySession();
            return await session.LoadAsync<HostView>(hostId) is not null;
        }, TimeSpan.FromSeconds(60), $"host {_hostName} registered itself");

        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("remote", zone: "fsn1-p");
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING", seconds: 60);
        Assert.Equal(hostId.ToString(), Assert.Single(running.Instances()).GetProperty("hostId").GetString());
        Assert.DoesNotContain(app.Drivers, d => d.Running.Contains(Guid.Parse(running.Instances()[0].Id())));

        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id(), "STOPPED", seconds: 60);
    }

    /// <summary>The host runtime built beside this test assembly (same configuration: Debug or Release).</summary>
    private static string HostRuntimeDll()
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = testDir.Parent!.Name;
        var root = testDir;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Kraud.sln"))) root = root.Parent;
        var dll = Path.Combine(root!.FullName, "Kraud.HostRuntime", "bin", configuration, testDir.Name, "Kraud.HostRuntime.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("Build the solution first: the host runtime is missing.", dll);
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        if (Directory.Exists(_workDir)) Directory.Delete(_workDir, recursive: true);
    }
}
