using System.Text.Json;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// The real docker CLI (only the client: no daemon runs here) pointed at Kraud's Docker API with a tenant's token, the
/// way a user sets it up: DOCKER_HOST=tcp://…, and the token as an HTTP header in the config.json of a DOCKER_CONFIG
/// directory of this test's own.
/// </summary>
public sealed class DockerCli : IDisposable
{
    private readonly string _config = Directory.CreateTempSubdirectory("kraud-docker-config-").FullName;
    private readonly Uri _url;

    public DockerCli(Uri url, string token)
    {
        _url = url;
        if (ProcessRunner.Which("docker") is null)
            throw new InvalidOperationException("docker is missing: these tests use the real docker CLI. apt-get install docker.io (or run ./test.sh).");
        File.WriteAllText(Path.Combine(_config, "config.json"),
            JsonSerializer.Serialize(new { HttpHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {token}" } }));
    }

    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public Result ShouldSucceed()
        {
            Assert.True(ExitCode == 0, $"docker failed ({ExitCode}): {Error}{Output}");
            return this;
        }
    }

    public async Task<Result> RunAsync(params string[] args)
    {
        var result = await ProcessRunner.RunAsync(ProcessRunner.Which("docker")!, args, TimeSpan.FromSeconds(120), CancellationToken.None,
            environment: DockerEnvironment());
        return new Result(result.ExitCode, result.Output.Trim(), result.Error.Trim());
    }

    private Dictionary<string, string?> DockerEnvironment() => new() { ["DOCKER_HOST"] = $"tcp://{_url.Authority}", ["DOCKER_CONFIG"] = _config };

    /// <summary>
    /// Starts `docker logs -f` and reads its output until <paramref name="text"/> appears; the process is killed then (a
    /// Process, not CliWrap: it is read while it runs and never ends by itself).
    /// </summary>
    public async Task<string> FollowUntilAsync(string container, string text, TimeSpan timeout)
    {
        var start = new System.Diagnostics.ProcessStartInfo(ProcessRunner.Which("docker")!)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            Environment = { ["DOCKER_HOST"] = $"tcp://{_url.Authority}", ["DOCKER_CONFIG"] = _config },
            ArgumentList = { "logs", "-f", container },
        };
        using var process = System.Diagnostics.Process.Start(start)!;
        var seen = new System.Text.StringBuilder();
        var found = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Note(string? line)
        {
            if (line is null) return;
            lock (seen) seen.AppendLine(line);
            if (line.Contains(text, StringComparison.Ordinal)) found.TrySetResult();
        }
        process.OutputDataReceived += (_, e) => Note(e.Data);
        process.ErrorDataReceived += (_, e) => Note(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await found.Task.WaitAsync(timeout);
            Assert.False(process.HasExited, "docker logs -f keeps following");
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
        lock (seen) return seen.ToString();
    }

    public void Dispose()
    {
        if (Directory.Exists(_config)) Directory.Delete(_config, recursive: true);
    }
}
