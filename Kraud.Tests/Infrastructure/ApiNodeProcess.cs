using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A Kraud.Api process on a real loopback socket, as an operator starts one: the CLI's specs talk to one, cluster specs
/// and the benchmark start several on one database and kill them (SIGKILL) or stop them (SIGTERM) as a crash or an
/// orchestrator would. The one launcher of Kraud.Api processes (the benchmark compiles this file too).
/// </summary>
public sealed partial class ApiNodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Name { get; }

    /// <summary>Its own directory (the state directory is inside it), removed with the process.</summary>
    public string WorkDirectory { get; }

    private ApiNodeProcess(Process process, string name, string workDirectory)
    {
        _process = process;
        Name = name;
        WorkDirectory = workDirectory;
    }

    /// <summary>
    /// Starts Kraud.Api on <paramref name="connectionString"/> as the node <paramref name="name"/> (Kraud:NodeId), the
    /// bootstrap operator token <paramref name="operatorToken"/>, on a port the kernel picks; <paramref name="environment"/>
    /// adds or overrides settings (double underscores for sections, as an operator's environment would). <paramref name="url"/>
    /// is where it listens: by default a port the kernel picks; a node started again takes its old address.
    /// </summary>
    public static ApiNodeProcess Start(string connectionString, string name, string operatorToken, IEnumerable<KeyValuePair<string, string>>? environment = null,
        Uri? url = null)
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
            // Port 0: the kernel picks a free port, and Kraud says which in its "Now listening on" line.
            ArgumentList = { dll, "--urls", url?.ToString().TrimEnd('/') ?? "http://127.0.0.1:0", "--contentRoot", Path.GetDirectoryName(dll)! },
            Environment =
            {
                ["ConnectionStrings__Kraud"] = connectionString,
                ["KRAUD_BOOTSTRAP_TOKEN"] = operatorToken,
                ["Kraud__StateDirectory"] = Path.Combine(workDirectory, "state"),
                ["Kraud__NodeId"] = name,
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            },
        };
        foreach (var (key, value) in environment ?? []) start.Environment[key] = value;
        // A Process, not CliWrap: the node runs for the whole spec, its output is read as it comes, and specs kill or stop it.
        var process = new Process { StartInfo = start };
        var node = new ApiNodeProcess(process, name, workDirectory);
        process.OutputDataReceived += (_, e) => node.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => node.Keep(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return node;
    }

    /// <summary>Where the node listens, once it said so.</summary>
    public Uri Url => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException($"Node {Name} is not listening yet.");

    public bool IsServing => _listening.Task.IsCompletedSuccessfully;

    /// <summary>Waits until the node accepts requests (its "Now listening on" line); answers its address.</summary>
    public async Task<Uri> WaitUntilServingAsync(TimeSpan within)
    {
        if (await Task.WhenAny(_listening.Task, _process.WaitForExitAsync(), Task.Delay(within)) != _listening.Task)
            throw new TimeoutException($"Node {Name} did not start serving within {within.TotalSeconds:F0} s (exited: {_process.HasExited}):\n{OutputTail()}");
        return _listening.Task.Result;
    }

    [GeneratedRegex(@"Now listening on: (?<url>http://127\.0\.0\.1:\d+)", RegexOptions.ExplicitCapture, 1000)]
    private static partial Regex ListeningLine();

    private void Keep(string? line)
    {
        if (line is null) return;
        if (ListeningLine().Match(line) is { Success: true } m) _listening.TrySetResult(new Uri(m.Groups["url"].Value));
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

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>SIGKILL: the node dies mid-way, as a crashed machine would; nothing of it says goodbye.</summary>
    public async Task KillAsync()
    {
        if (_process.HasExited) return;
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
        await KillAsync();
        _process.Dispose();
        if (Directory.Exists(WorkDirectory)) Directory.Delete(WorkDirectory, recursive: true);
    }
}
