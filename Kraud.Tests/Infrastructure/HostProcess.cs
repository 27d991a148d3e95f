using System.Diagnostics;
using Kraud.Projections.Fleet;
using Marten;

namespace Kraud.Tests.Infrastructure;

/// <summary>A real Kraud.HostRuntime process for one host, started the way an operator would start it.</summary>
public sealed class HostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _workDir;

    public string Name { get; }
    public Guid Id => Kraud.Domain.Fleet.Host.IdFor(Name);

    private HostProcess(Process process, string name, string workDir)
    {
        _process = process;
        Name = name;
        _workDir = workDir;
    }

    public static HostProcess Start(KraudApp app, string name, string zone, bool sevSnp = false, int cpu = 8, int memoryMiB = 16384,
        string driver = "simulated", IReadOnlyDictionary<string, string>? environment = null, string role = "Compute", int nvmeGiB = 1024)
    {
        var workDir = Path.Combine(Path.GetTempPath(), $"kraud-host-{Guid.NewGuid():N}");
        Directory.CreateDirectory(workDir);
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList =
            {
                BuiltBesideTests.Dll("Kraud.HostRuntime"), "--host", name, "--zone", zone, "--rack", "r1", "--role", role, "--cpu", cpu.ToString(CultureInfo.InvariantCulture), "--memory-mib", memoryMiB.ToString(CultureInfo.InvariantCulture),
                "--nvme-gib", nvmeGiB.ToString(CultureInfo.InvariantCulture), "--sev-snp", sevSnp ? "true" : "false", "--driver", driver,
                // One key-encryption key for the whole fleet, as a KMS would hand it to every host runtime.
                "--kek-file", KekFile(app),
            },
            Environment =
            {
                ["KRAUD_DATABASE"] = app.ConnectionString,
                ["Fleet__SimulatedBootDelayMs"] = "10",
                ["Fleet__HeartbeatIntervalMs"] = KraudApp.HeartbeatIntervalMs.ToString(),
                // The control plane trusts the test root in its own state directory: SEV-SNP host processes certify their keys under it.
                ["Fleet__SevSnp__AuthorityDirectory"] = Path.Combine(app.StateDirectory, Kraud.HostRuntime.Configuration.SevSnpOptions.DefaultDirectoryName),
            },
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        var process = Process.Start(start)!;
        // KRAUD_TEST_HOST_LOGS=<dir> keeps each host runtime's output there, for looking into a failed spec.
        if (Environment.GetEnvironmentVariable("KRAUD_TEST_HOST_LOGS") is { Length: > 0 } logs)
        {
            Directory.CreateDirectory(logs);
            var log = TextWriter.Synchronized(new StreamWriter(Path.Combine(logs, $"{name}.log"), append: true) { AutoFlush = true });
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new HostProcess(process, name, workDir);
    }

    public static string KekFile(KraudApp app) => Path.Combine(app.StateDirectory, "kek");

    public async Task WaitUntilRegisteredAsync(KraudApp app) =>
        await Eventually.Until(async () =>
        {
            await using var session = app.Store.QuerySession();
            return await session.LoadAsync<HostView>(Id) is not null;
        }, TimeSpan.FromSeconds(60), $"host {Name} registered itself");

    /// <summary>SIGKILL: the host runtime gets no chance to say goodbye, as with a power cut.</summary>
    public async Task KillAsync()
    {
        if (_process.HasExited) return;
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
        if (Directory.Exists(_workDir)) Directory.Delete(_workDir, recursive: true);
    }
}
