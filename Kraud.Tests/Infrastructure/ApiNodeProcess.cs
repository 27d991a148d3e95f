using System.Diagnostics;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A Kraud.Api process joining a test application's database as one more control-plane node (no fleet of its own), so
/// that a spec can kill it (SIGKILL) or stop it (SIGTERM) as an operator or a crash would.
/// </summary>
public sealed class ApiNodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _workDirectory;
    private readonly Queue<string> _output = new();

    public string Name { get; }

    private ApiNodeProcess(Process process, string name, string workDirectory)
    {
        _process = process;
        Name = name;
        _workDirectory = workDirectory;
    }

    public static ApiNodeProcess Start(KraudApp app, string name)
    {
        var workDirectory = Path.Combine(Path.GetTempPath(), $"kraud-node-{Guid.NewGuid():N}");
        Directory.CreateDirectory(workDirectory);
        var dll = BuiltBesideTests.Dll("Kraud.Api");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            ArgumentList = { dll, "--urls", "http://127.0.0.1:0", "--contentRoot", Path.GetDirectoryName(dll)! },
            Environment =
            {
                ["ConnectionStrings__Kraud"] = app.ConnectionString,
                ["KRAUD_BOOTSTRAP_TOKEN"] = KraudApp.OperatorToken,
                ["Kraud__StateDirectory"] = Path.Combine(workDirectory, "state"),
                ["Kraud__NodeId"] = name,
                ["Fleet__InProcess"] = "false",
                ["Fleet__EnforceNPlus2"] = "false",
                ["Fleet__HeartbeatIntervalMs"] = KraudApp.HeartbeatIntervalMs.ToString(CultureInfo.InvariantCulture),
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            },
        };
        var process = new Process { StartInfo = start };
        var node = new ApiNodeProcess(process, name, workDirectory);
        process.OutputDataReceived += (_, e) => node.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => node.Keep(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return node;
    }

    private readonly TaskCompletionSource _serving = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Waits until the node accepts requests (its "Now listening on" line).</summary>
    public async Task WaitUntilServingAsync(TimeSpan within)
    {
        if (await Task.WhenAny(_serving.Task, _process.WaitForExitAsync(), Task.Delay(within)) != _serving.Task)
            throw new TimeoutException($"Node {Name} did not start serving (exited: {_process.HasExited}):\n{OutputTail()}");
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        if (line.Contains("Now listening on:", StringComparison.Ordinal)) _serving.TrySetResult();
        lock (_output)
        {
            _output.Enqueue(line);
            if (_output.Count > 100) _output.Dequeue();
        }
    }

    public string OutputTail()
    {
        lock (_output) return string.Join('\n', _output);
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>SIGKILL: the node dies mid-way, as a crashed machine would; nothing of it says goodbye.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    /// <summary>SIGTERM, as an orchestrator's rolling restart stops a node; answers how long it took to exit.</summary>
    public async Task<TimeSpan> TerminateAsync(TimeSpan within)
    {
        var clock = Stopwatch.StartNew();
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
        using var deadline = new CancellationTokenSource(within);
        await _process.WaitForExitAsync(deadline.Token);
        return clock.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        if (Directory.Exists(_workDirectory)) Directory.Delete(_workDirectory, recursive: true);
    }
}
