using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.Infrastructure;

/// <summary>The result of one kubectl run: its exit code and what it printed.</summary>
public sealed record KubectlResult(int ExitCode, string Output, string Error)
{
    public KubectlResult ShouldSucceed()
    {
        Assert.True(ExitCode == 0, $"kubectl exited {ExitCode}: {Error}{Output}");
        return this;
    }

    public JsonElement Json() => JsonDocument.Parse(Output).RootElement.Clone();
}

/// <summary>
/// The real kubectl (KRAUD_KUBECTL, else the one on PATH; ./test.sh installs Debian's kubernetes-client when there is none)
/// with a cluster's kubeconfig from Kraud's `kubeconfig` query, in a directory of its own (its discovery cache too), removed
/// on dispose.
/// </summary>
public sealed class Kubectl : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), $"kraud-kubectl-{Guid.NewGuid():N}");

    public Kubectl(string kubeconfig)
    {
        Directory.CreateDirectory(directory);
        KubeconfigPath = Path.Combine(directory, "kubeconfig");
        File.WriteAllText(KubeconfigPath, kubeconfig);
    }

    public static string Executable => Environment.GetEnvironmentVariable("KRAUD_KUBECTL") is { Length: > 0 } path ? path : "kubectl";

    public string KubeconfigPath { get; }

    /// <summary>Writes a file (a manifest) into the kubectl's directory and returns its path.</summary>
    public string WriteFile(string name, string content)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, content);
        return path;
    }

    public async Task<KubectlResult> RunAsync(params string[] args) => await RunAsync(TimeSpan.FromSeconds(90), args);

    public async Task<KubectlResult> RunAsync(TimeSpan timeout, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(Executable, ["--kubeconfig", KubeconfigPath, "--cache-dir", Path.Combine(directory, "cache"), .. args],
            timeout, CancellationToken.None, environment: new Dictionary<string, string?> { ["HOME"] = directory });
        return new KubectlResult(result.ExitCode, result.Output, result.Error);
    }

    /// <summary>
    /// Starts a long-running kubectl (a watch) whose output lines are collected as they come. A Process, not CliWrap: the
    /// test reads its lines while it runs and ends it, where ProcessRunner waits for an end of its own.
    /// </summary>
    public KubectlWatch Start(params string[] args)
    {
        var info = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--kubeconfig", KubeconfigPath, "--cache-dir", Path.Combine(directory, "cache") }.Concat(args)) info.ArgumentList.Add(a);
        info.Environment["HOME"] = directory;
        return new KubectlWatch(Process.Start(info)!);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // A kubectl still writing its cache: the temp directory's cleaner takes the rest.
        }
    }
}

/// <summary>A kubectl that keeps running (get --watch): its lines so far, and kill on dispose.</summary>
public sealed class KubectlWatch : IDisposable
{
    private readonly Process process;
    private readonly StringBuilder lines = new();
    private readonly StringBuilder errors = new();

    public KubectlWatch(Process process)
    {
        this.process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (lines) lines.AppendLine(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (errors) errors.AppendLine(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Output
    {
        get
        {
            lock (lines) return lines.ToString();
        }
    }

    public string Errors
    {
        get
        {
            lock (errors) return errors.ToString();
        }
    }

    public void Dispose()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.WaitForExit(5000);
        process.Dispose();
    }
}
