using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// The real Kraud.Api as its own process on a real loopback socket (a CLI process cannot reach Alba's in-memory
/// TestServer), against a fresh database of the test run's cluster, with its default in-process simulated fleet.
/// Shared by one collection; everything it made is removed when the collection ends.
/// </summary>
public sealed partial class KraudProcess : IAsyncLifetime
{
    public const string OperatorToken = "krd_test_cli_operator_token_0123456789";

    private Process? _process;
    private readonly List<string> _log = [];

    public string Url { get; private set; } = "";
    public string ConnectionString { get; private set; } = "";
    public string WorkDirectory { get; } = Path.Combine(Path.GetTempPath(), $"kraud-api-{Guid.NewGuid():N}");

    /// <summary>What the process printed, for failure messages.</summary>
    public string Log
    {
        get
        {
            lock (_log) return string.Join('\n', _log.TakeLast(80));
        }
    }

    public async Task InitializeAsync()
    {
        ConnectionString = await TestDatabase.CreateAsync("kraudcli");
        Directory.CreateDirectory(WorkDirectory);
        var dll = BuiltBesideTests.Dll("Kraud.Api");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = WorkDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // Port 0: the kernel picks a free port, and Kraud says which in its "Now listening on" line.
            ArgumentList = { dll, "--urls", "http://127.0.0.1:0", "--contentRoot", Path.GetDirectoryName(dll)! },
            Environment =
            {
                ["ConnectionStrings__Kraud"] = ConnectionString,
                ["KRAUD_BOOTSTRAP_TOKEN"] = OperatorToken,
                ["Kraud__StateDirectory"] = Path.Combine(WorkDirectory, "state"),
                ["Fleet__SimulatedBootDelayMs"] = KraudApp.BootDelayMs.ToString(),
                ["Fleet__HeartbeatIntervalMs"] = KraudApp.HeartbeatIntervalMs.ToString(),
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                // Docker Hub's mirror, a registry of the process's own with the images the CLI's specs name (no internet here).
                ["Images__EmbeddedRegistry__Enabled"] = "true",
            },
        };
        for (var i = 0; i < KraudApp.SpecImages.Length; i++)
            start.Environment[$"Images__EmbeddedRegistry__Seed__{i.ToString(CultureInfo.InvariantCulture)}"] = KraudApp.SpecImages[i];
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        // A Process, not CliWrap: the server runs for the whole spec and is stopped by it.
        _process = Process.Start(start)!;
        void OnLine(string? line)
        {
            if (line is null) return;
            lock (_log) _log.Add(line);
            if (ListeningLine().Match(line) is { Success: true } m) listening.TrySetResult(m.Groups["url"].Value);
        }
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(listening.Task, exited, Task.Delay(TimeSpan.FromSeconds(90)));
        if (first != listening.Task) throw new InvalidOperationException($"Kraud.Api did not start listening:\n{Log}");
        Url = listening.Task.Result;
        using var http = new HttpClient { BaseAddress = new Uri(Url) };
        await Eventually.Until(async () => (await http.GetAsync("/health")).IsSuccessStatusCode, TimeSpan.FromSeconds(60), "Kraud.Api is healthy");
    }

    [GeneratedRegex(@"Now listening on: (?<url>http://127\.0\.0\.1:\d+)", RegexOptions.ExplicitCapture, 1000)]
    private static partial Regex ListeningLine();

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        if (Directory.Exists(WorkDirectory)) Directory.Delete(WorkDirectory, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class CliCollection : ICollectionFixture<KraudProcess>
{
    public const string Name = "kraud CLI against a Kraud process";
}

/// <summary>Programs of this solution, built beside the tests (same configuration: Debug or Release).</summary>
public static class BuiltBesideTests
{
    public static string Dll(string project, string? assembly = null)
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = testDir.Parent!.Name;
        var root = testDir;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Kraud.sln"))) root = root.Parent;
        var dll = Path.Combine(root!.FullName, project, "bin", configuration, testDir.Name, (assembly ?? project) + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"Build the solution first: {project} is missing.", dll);
    }
}
