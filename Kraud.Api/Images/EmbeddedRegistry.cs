using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Kraud.HostRuntime.Drivers.Qemu;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.Api.Images;

/// <summary>How a registry Kraud starts checks who may use it (Distribution's htpasswd or token auth); null: anyone.</summary>
public abstract record RegistryAccess;

/// <summary>HTTP Basic against an htpasswd file (bcrypt hashes).</summary>
public sealed record HtpasswdAccess(string HtpasswdFile) : RegistryAccess;

/// <summary>Bearer tokens of the Distribution token spec, issued by <paramref name="Realm"/> and signed under a certificate of <paramref name="RootCertBundle"/>.</summary>
public sealed record TokenAccess(string Realm, string Service, string Issuer, string RootCertBundle) : RegistryAccess;

/// <summary>
/// A registry of its own, as Kraud starts its own PostgreSQL: Debian's docker-registry (the Distribution registry) on
/// 127.0.0.1 and a free port, with filesystem storage in <see cref="Directory"/>. The default `dotnet run` uses one as
/// the mirror of Docker Hub (there is no internet on the machines it is built for), and the tests start some with and
/// without authentication. A registry a previous run left behind (its pidfile names it) is stopped first.
/// </summary>
public sealed class EmbeddedRegistry : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly ILogger _logger;

    private EmbeddedRegistry(Process process, string directory, int port, ILogger logger)
    {
        _process = process;
        _logger = logger;
        Directory = directory;
        Port = port;
    }

    public string Directory { get; }
    public int Port { get; }

    /// <summary>host:port, as image references and Images:InsecureRegistries name it.</summary>
    public string HostPort => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public Uri Url => new($"http://{HostPort}/");

    public static async Task<EmbeddedRegistry> StartAsync(string directory, RegistryAccess? access = null, ILogger? logger = null,
        string program = "docker-registry", CancellationToken ct = default)
    {
        var executable = ProcessRunner.Which(program)
                         ?? throw new InvalidOperationException($"{program} is not installed (Debian: apt-get install docker-registry).");
        directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(directory);
        StopLeftover(directory, logger);
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            var config = Path.Combine(directory, "config.yml");
            await File.WriteAllTextAsync(config, Config(directory, port, access), ct);
            var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("serve");
            start.ArgumentList.Add(config);
            // A Process, not CliWrap: the registry serves until Kraud stops, and its pid goes into the pidfile at once.
            var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
            var registry = new EmbeddedRegistry(process, directory, port, logger ?? NullLogger.Instance);
            process.OutputDataReceived += (_, e) => registry.Note(e.Data);
            process.ErrorDataReceived += (_, e) => registry.Note(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await File.WriteAllTextAsync(Path.Combine(directory, "registry.pid"), process.Id.ToString(CultureInfo.InvariantCulture), ct);
            if (await registry.WaitUntilServingAsync(TimeSpan.FromSeconds(20), ct))
            {
                logger?.LogInformation("Registry {Url} serves {Directory}", registry.Url, directory);
                return registry;
            }
            await registry.DisposeAsync();
            // Another process may have taken the port between our probe and the registry's bind.
            if (attempt >= 3) throw new InvalidOperationException($"{program} did not start serving on {registry.HostPort}: {registry.Output}");
        }
    }

    private void Note(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            if (_output.Length < 16 * 1024) _output.AppendLine(line);
        }
    }

    private string Output
    {
        get
        {
            lock (_output) return _output.ToString().Trim();
        }
    }

    private async Task<bool> WaitUntilServingAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(Url, "v2/"), ct);
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized) return true;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested) { }
            await Task.Delay(50, ct);
        }
        return false;
    }

    private static string Config(string directory, int port, RegistryAccess? access)
    {
        var yaml = new StringBuilder($"""
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: {Path.Combine(directory, "data")}
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:{port}
              secret: {Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))}

            """);
        switch (access)
        {
            case HtpasswdAccess h:
                yaml.Append($"""
                    auth:
                      htpasswd:
                        realm: kraud
                        path: {h.HtpasswdFile}

                    """);
                break;
            case TokenAccess t:
                yaml.Append($"""
                    auth:
                      token:
                        realm: {t.Realm}
                        service: {t.Service}
                        issuer: {t.Issuer}
                        rootcertbundle: {t.RootCertBundle}

                    """);
                break;
        }
        return yaml.ToString();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A registry of this directory that outlived its Kraud (killed, not stopped): only ours, checked by its command line.</summary>
    private static void StopLeftover(string directory, ILogger? logger)
    {
        var pidFile = Path.Combine(directory, "registry.pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out var pid)) return;
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            if (!cmdline.Contains(Path.Combine(directory, "config.yml"), StringComparison.Ordinal)) return;
            logger?.LogWarning("Stopping registry {Pid} left behind in {Directory}", pid, directory);
            // It holds the directory's data: a new registry starts only once it is gone.
            ProcessExit.KillForeign(pid, $"registry of {directory}", logger ?? NullLogger.Instance);
        }
        catch (IOException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await ProcessExit.KillAsync(_process, $"registry of {Directory}", _logger);
        _process.Dispose();
        var pidFile = Path.Combine(Directory, "registry.pid");
        if (File.Exists(pidFile)) File.Delete(pidFile);
    }
}
