using System.Diagnostics;

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
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory ?? Home,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(BuiltBesideTests.Dll("Kraud.Cli", "kraud"));
        foreach (var a in args) start.ArgumentList.Add(a);
        Isolate(start.Environment);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException e)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kraud {string.Join(' ', args)} ran for 3 minutes: {await stdout} {await stderr}", e);
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// On a terminal: the CLI runs under a pseudo-terminal made by script(1) (util-linux, on every Debian), as a person
    /// at a shell would see it.
    /// </summary>
    public async Task<CliResult> RunOnTerminalAsync(params string[] args)
    {
        var command = string.Join(' ', new[] { "dotnet", BuiltBesideTests.Dll("Kraud.Cli", "kraud") }.Concat(args).Select(Quote));
        var start = new ProcessStartInfo("script")
        {
            WorkingDirectory = Home,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            ArgumentList = { "-qefc", $"stty cols 160 rows 50; {command}", "/dev/null" },
        };
        Isolate(start.Environment);
        start.Environment["TERM"] = "xterm-256color";
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return new CliResult(process.ExitCode, await stdout, await stderr);
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

    private void Isolate(IDictionary<string, string?> env)
    {
        env["HOME"] = Home;
        env.Remove("XDG_CONFIG_HOME");
        env.Remove("KRAUD_URL");
        env.Remove("KRAUD_TOKEN");
        env["DOTNET_NOLOGO"] = "1";
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    public void Dispose()
    {
        if (Directory.Exists(Home)) Directory.Delete(Home, recursive: true);
    }
}
