using System.Diagnostics;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.Infrastructure;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public CliResult ShouldSucceed()
    {
        Assert.True(ExitCode == 0, $"kraud exited {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}");
        return this;
    }

    public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

/// <summary>
/// The kraud CLI as a user runs it: a process with a home of its own (its config never touches the real
/// ~/.config/kraud), removed with this object.
/// </summary>
public sealed class KraudCli : IDisposable
{
    public string Home { get; } = Path.Combine(Path.GetTempPath(), $"kraud-cli-home-{Guid.NewGuid():N}");
    public string ConfigFile => Path.Combine(Home, ".config", "kraud", "config.json");

    public KraudCli() => Directory.CreateDirectory(Home);

    public Task<CliResult> RunAsync(params string[] args) => RunAsync(args, null);

    public async Task<CliResult> RunAsync(string[] args, IReadOnlyDictionary<string, string>? environment, string? workingDirectory = null)
    {
        var env = Isolated();
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) env[k] = v;
        var result = await ProcessRunner.RunAsync("dotnet", [BuiltBesideTests.Dll("Kraud.Cli", "kraud"), .. args], TimeSpan.FromMinutes(3),
            CancellationToken.None, workingDirectory ?? Home, environment: env);
        return new CliResult(result.ExitCode, result.Output, result.Error);
    }

    /// <summary>
    /// Starts a command that keeps running (kraud pods logs -f); its output is read line by line as it comes, so a test
    /// can wait for a line before it makes the next one.
    /// </summary>
    public RunningCli Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Home, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(BuiltBesideTests.Dll("Kraud.Cli", "kraud"));
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in Isolated())
            if (v is null) start.Environment.Remove(k);
            else start.Environment[k] = v;
        // A Process, not CliWrap: the test reads its lines while it runs and ends it.
        return new RunningCli(Process.Start(start)!);
    }

    /// <summary>
    /// On a terminal: the CLI runs under a pseudo-terminal made by script(1) (util-linux, on every Debian), as a person
    /// at a shell would see it.
    /// </summary>
    public async Task<CliResult> RunOnTerminalAsync(params string[] args)
    {
        var command = string.Join(' ', new[] { "dotnet", BuiltBesideTests.Dll("Kraud.Cli", "kraud") }.Concat(args).Select(Quote));
        var env = Isolated();
        env["TERM"] = "xterm-256color";
        var result = await ProcessRunner.RunAsync("script", ["-qefc", $"stty cols 160 rows 50; {command}", "/dev/null"], TimeSpan.FromMinutes(3),
            CancellationToken.None, Home, environment: env);
        return new CliResult(result.ExitCode, result.Output, result.Error);
    }

    /// <summary>
    /// Logs in as the operator (context "op"), makes a tenant of this test's own and an ADMIN token for it, and logs in with
    /// that (context "admin", now current), all through the CLI.
    /// </summary>
    public async Task<string> LoginAsNewTenantAdminAsync(KraudProcess kraud)
    {
        (await RunAsync("login", "--url", kraud.Url, "--token", KraudProcess.OperatorToken, "--context", "op")).ShouldSucceed();
        var tenant = System.Text.Json.JsonDocument.Parse((await RunAsync("tenants", "create", $"t{Guid.NewGuid():N}"[..12], "-o", "json")).ShouldSucceed().Stdout)
            .RootElement.GetProperty("id").GetString()!;
        var token = (await RunAsync("tokens", "create", "laptop", "--role", "ADMIN", "--tenant", tenant)).ShouldSucceed().Stdout.Trim();
        (await RunAsync("login", "--url", kraud.Url, "--token", token, "--context", "admin")).ShouldSucceed();
        return tenant;
    }

    /// <summary>The CLI's environment: this home, and none of the user's config or Kraud variables (null removes one).</summary>
    private Dictionary<string, string?> Isolated() => new()
    {
        ["HOME"] = Home, ["XDG_CONFIG_HOME"] = null, ["KRAUD_URL"] = null, ["KRAUD_TOKEN"] = null, ["DOTNET_NOLOGO"] = "1",
    };

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    public void Dispose()
    {
        if (Directory.Exists(Home)) Directory.Delete(Home, recursive: true);
    }
}

/// <summary>A CLI process that is still running, with what it printed so far.</summary>
public sealed class RunningCli : IAsyncDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _stdout = new(), _stderr = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _open = 2;

    public RunningCli(Process process)
    {
        _process = process;
        process.StandardInput.Close();
        process.OutputDataReceived += (_, e) => Note(_stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Note(_stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    private void Note(System.Text.StringBuilder to, string? line)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _open) == 0) _closed.TrySetResult();
            return;
        }
        lock (to) to.AppendLine(line);
    }

    public string Stdout
    {
        get
        {
            lock (_stdout) return _stdout.ToString();
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr) return _stderr.ToString();
        }
    }

    public bool HasExited => _process.HasExited;

    public Task UntilPrintedAsync(string text, TimeSpan timeout) =>
        Eventually.Until(() => Task.FromResult(Stdout.Contains(text, StringComparison.Ordinal) || Stderr.Contains(text, StringComparison.Ordinal)),
            timeout, $"the CLI printed '{text}' (stdout: {Stdout} stderr: {Stderr})");

    /// <summary>Waits for the process to end by itself; its exit code and everything it printed.</summary>
    public async Task<CliResult> ExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        await _closed.Task.WaitAsync(cancel.Token);
        return new CliResult(_process.ExitCode, Stdout, Stderr);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
