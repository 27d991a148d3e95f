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
    public string Zone { get; }
    public Guid Id => Kraud.Domain.Fleet.Host.IdFor(Name);

    private HostProcess(Process process, string name, string zone, string workDir)
    {
        _process = process;
        Name = name;
        Zone = zone;
        _workDir = workDir;
    }

    public static HostProcess Start(KraudApp app, string name, string zone, bool sevSnp = false, int cpu = 8, int memoryMiB = 16384,
        string driver = "simulated", IReadOnlyDictionary<string, string>? environment = null, string role = "Compute", int nvmeGiB = 1024,
        bool rack = false)
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
        foreach (var (key, value) in app.RegistryEnvironment) start.Environment[key] = value;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        // A rack's hosts come from Fleet:Hosts: only the flags every host shares stay.
        if (rack) start.ArgumentList.Clear();
        if (rack) foreach (var arg in new[] { BuiltBesideTests.Dll("Kraud.HostRuntime"), "--kek-file", KekFile(app) }) start.ArgumentList.Add(arg);
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

    /// <summary>One runtime process for several hosts (Fleet:Hosts, no --host): a lab rack costs one cold .NET process, not one per host.</summary>
    public static HostProcess StartRack(KraudApp app, IReadOnlyList<(string Name, string Zone, string Role, string Driver)> hosts,
        IReadOnlyDictionary<string, string> environment)
    {
        var all = new Dictionary<string, string>(environment);
        foreach (var (h, i) in hosts.Select((h, i) => (h, i)))
        {
            all[$"Fleet__Hosts__{i}__Name"] = h.Name;
            all[$"Fleet__Hosts__{i}__Zone"] = h.Zone;
            all[$"Fleet__Hosts__{i}__Rack"] = "r1";
            all[$"Fleet__Hosts__{i}__Role"] = h.Role;
            all[$"Fleet__Hosts__{i}__Driver"] = h.Driver;
            all[$"Fleet__Hosts__{i}__Cpu"] = "8";
            all[$"Fleet__Hosts__{i}__MemoryMiB"] = "16384";
            all[$"Fleet__Hosts__{i}__NvmeGiB"] = "100";
        }
        return Start(app, hosts[0].Name, hosts[0].Zone, environment: all, rack: true);
    }

    public static string KekFile(KraudApp app) => Path.Combine(app.StateDirectory, "kek");

    public async Task WaitUntilRegisteredAsync(KraudApp app, string? hostName = null)
    {
        var id = hostName is null ? Id : Kraud.Domain.Fleet.Host.IdFor(hostName);
        try
        {
            await Eventually.Until(async () =>
            {
                await using var session = app.Store.QuerySession();
                return await session.LoadAsync<HostView>(id) is not null;
            }, TimeSpan.FromSeconds(60), $"host {hostName ?? Name} registered itself");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} Exited: {_process.HasExited}; its output:\n{OutputTail()}", e);
        }
    }

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
