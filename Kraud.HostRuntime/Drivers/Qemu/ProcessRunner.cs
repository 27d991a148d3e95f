using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;
using CliWrap;

namespace Kraud.HostRuntime.Drivers.Qemu;

public sealed record ProcessResult(int ExitCode, string Output, string Error);

/// <summary>
/// Short-lived helper commands (apt-get, dpkg-deb, qemu-img, ip, nft, initdb…), run through CliWrap: always bounded by a
/// timeout, killed with their descendants when it passes or the caller cancels, their output buffered.
/// </summary>
public static class ProcessRunner
{
    /// <param name="whileRunning">Runs beside the command with a task that completes when it has exited (to feed it through a FIFO).</param>
    /// <param name="stdin">Written to the command's standard input, which is then closed (it is closed at once without).</param>
    /// <param name="environment">Variables set for the command (a null value removes one); the rest is inherited.</param>
    public static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct,
        string? workingDirectory = null, Func<Task, Task>? whileRunning = null, string? stdin = null,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var arguments = args.ToList();
        var output = new StringBuilder();
        var error = new StringBuilder();
        var command = Cli.Wrap(file).WithArguments(arguments).WithValidation(CommandResultValidation.None)
            .WithStandardOutputPipe(PipeTarget.ToStringBuilder(output)).WithStandardErrorPipe(PipeTarget.ToStringBuilder(error));
        if (workingDirectory is not null) command = command.WithWorkingDirectory(workingDirectory);
        if (stdin is not null) command = command.WithStandardInputPipe(PipeSource.FromString(stdin));
        if (environment is not null) command = command.WithEnvironmentVariables(environment);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(timeout);
        try
        {
            var running = command.ExecuteAsync(bounded.Token);
            if (whileRunning is not null) await whileRunning(running.Task);
            var result = await running;
            return new ProcessResult(result.ExitCode, output.ToString(), error.ToString());
        }
        catch (OperationCanceledException timedOut) when (!ct.IsCancellationRequested)
        {
            var printed = $"{output}{error}".Trim();
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish within {timeout.TotalSeconds:F0} s and was killed" +
                                       (printed.Length == 0 ? "." : $"; it printed: {printed[Math.Max(0, printed.Length - 2000)..]}"), timedOut);
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"{file} did not start: {e.Message}", e);
        }
    }

    /// <summary>The same, for callers that cannot await (the data plane's netlink and nft set-up runs on plain threads).</summary>
    public static ProcessResult Run(string file, IEnumerable<string> args, TimeSpan timeout, string? stdin = null) =>
        Task.Run(() => RunAsync(file, args, timeout, CancellationToken.None, stdin: stdin)).GetAwaiter().GetResult();

    /// <summary>The full path of a program on PATH, or null.</summary>
    public static string? Which(string program)
    {
        if (program.Contains('/')) return File.Exists(program) ? program : null;
        return (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);
    }
}

/// <summary>
/// Hands a secret to a QEMU process through a FIFO: the key travels through a kernel pipe buffer, never touches a disk,
/// never appears on a command line, and the 0600 FIFO is unlinked as soon as the reader has opened it.
/// </summary>
public static class SecretPipe
{
    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo(string path, uint mode);

    public static void Create(string path)
    {
        if (File.Exists(path)) File.Delete(path);
        if (MkFifo(path, Convert.ToUInt32("600", 8)) != 0)
            throw new IOException($"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()}).");
    }

    /// <summary>
    /// Writes <paramref name="secret"/> once the reader opens the FIFO, then removes it. If <paramref name="readerGone"/>
    /// completes first (the process died before reading), the FIFO is opened here to release the waiting writer.
    /// </summary>
    public static async Task FeedAsync(string path, byte[] secret, Task readerGone, TimeSpan timeout)
    {
        var writer = Task.Run(() =>
        {
            // Opening the write end blocks until a reader has opened the read end.
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            File.Delete(path);
            stream.Write(secret);
        });
        var first = await Task.WhenAny(writer, readerGone, Task.Delay(timeout));
        if (first != writer)
        {
            // Nobody will read: become the reader ourselves so the blocked writer returns, and drop what it wrote.
            try
            {
                await using var drain = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            }
            catch (IOException) { } // the writer finished and removed the FIFO meanwhile
        }
        try
        {
            await writer;
        }
        catch (IOException) when (first != writer)
        {
            // The pipe was drained and closed before the writer wrote: the secret went nowhere, as intended.
        }
        if (File.Exists(path)) File.Delete(path);
    }

    /// <summary>
    /// Opens a FIFO another process writes (QEMU's side of a console port) once that process has opened it. When
    /// <paramref name="writerGone"/> completes first (the process died before it opened it), the open is released by
    /// opening the write end here; the stream then reads what is buffered and ends.
    /// </summary>
    public static async Task<Stream> OpenForReadingAsync(string path, Task writerGone)
    {
        // Opening the read end blocks until a writer has opened the write end.
        var reader = Task.Run(() => (Stream)new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0));
        if (await Task.WhenAny(reader, writerGone) != reader && !reader.IsCompleted)
        {
            try
            {
                await using var release = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            }
            catch (IOException) { } // the open returned meanwhile
        }
        return await reader;
    }
}
