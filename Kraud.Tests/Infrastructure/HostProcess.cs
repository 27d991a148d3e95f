using System.Diagnostics;

namespace Kraud.Tests.Infrastructure;

/// <summary>A real Kraud.HostRuntime process for one host, started the way an operator would start it.</summary>
public sealed partial class HostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _workDir;

    public string Name { get; }
    public string Zone { get; }
    public Guid Id => Kraud.Domain.Fleet.Host.IdFor(Name);

    private HostProcess(Process process, string name, string zone, string workDir)
    {
        _process = process;
        Name = name;
        Zone = zone;
        _workDir = workDir;
    }

    /// <summary>
    /// Starts a host runtime on <paramref name="connectionString"/>; <paramref name="stateDirectory"/> is the control
    /// plane's (the fleet's key-encryption key and the SEV-SNP test root live there).
    /// </summary>
    public static HostProcess Start(string connectionString, string stateDirectory, IReadOnlyDictionary<string, string> registryEnvironment, string name,
        string zone, bool sevSnp = false, int cpu = 8, int memoryMiB = 16384, string driver = "simulated", IReadOnlyDictionary<string, string>? environment = null,
        string role = "Compute", int nvmeGiB = 1024, bool rack = false)
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
                "--kek-file", KekFile(stateDirectory),
            },
            Environment =
            {
                ["KRAUD_DATABASE"] = connectionString,
                ["Fleet__SimulatedBootDelayMs"] = "10",
                // The control plane trusts the test root in its own state directory: SEV-SNP host processes certify their keys under it.
                ["Fleet__SevSnp__AuthorityDirectory"] = Path.Combine(stateDirectory, Kraud.HostRuntime.Configuration.SevSnpOptions.DefaultDirectoryName),
            },
        };
        foreach (var (key, value) in registryEnvironment) start.Environment[key] = value;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        // A rack's hosts come from Fleet:Hosts: only the flags every host shares stay.
        if (rack) start.ArgumentList.Clear();
        if (rack) foreach (var arg in new[] { BuiltBesideTests.Dll("Kraud.HostRuntime"), "--kek-file", KekFile(stateDirectory) }) start.ArgumentList.Add(arg);
        // A Process, not CliWrap: the host runtime runs for the whole spec, its output is kept as it comes, and specs kill it.
        var process = new Process { StartInfo = start };
        var host = new HostProcess(process, name, zone, workDir);
        process.OutputDataReceived += (_, e) => host.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => host.Keep(e.Data);
        // KRAUD_TEST_HOST_LOGS=<dir> keeps each host runtime's output there, for looking into a failed spec.
        if (Environment.GetEnvironmentVariable("KRAUD_TEST_HOST_LOGS") is { Length: > 0 } logs)
        {
            Directory.CreateDirectory(logs);
            var log = TextWriter.Synchronized(new StreamWriter(Path.Combine(logs, $"{name}.log"), append: true) { AutoFlush = true });
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
        }
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    private readonly Queue<string> _output = new();

    private void Keep(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            _output.Enqueue(line);
            if (_output.Count > 100) _output.Dequeue();
        }
    }

    /// <summary>The last lines the process wrote, for failure messages.</summary>
    public string OutputTail()
    {
        lock (_output) return string.Join('\n', _output);
    }

    /// <summary>Where the fleet's key-encryption key lies, as a KMS would hand it to every host runtime.</summary>
    public static string KekFile(string stateDirectory) => Path.Combine(stateDirectory, "kek");

    /// <summary>SIGTERM, as an operator stops the service: the runtime stops its microVMs and removes what it made. SIGKILL after a minute.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited) return;
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
        }
    }

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
        StateDirectories.Remove(_workDir);
    }
}
