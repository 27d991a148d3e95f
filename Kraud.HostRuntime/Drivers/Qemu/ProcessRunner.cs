using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Kraud.HostRuntime.Drivers.Qemu;

public sealed record ProcessResult(int ExitCode, string Output, string Error);

/// <summary>Short-lived helper commands (apt-get, dpkg-deb, qemu-img): always bounded by a timeout, killed when it passes.</summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct,
        string? workingDirectory = null, Func<Process, Task>? whileRunning = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start.");
        var output = process.StandardOutput.ReadToEndAsync(ct);
        var error = process.StandardError.ReadToEndAsync(ct);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(timeout);
        try
        {
            if (whileRunning is not null) await whileRunning(process);
            await process.WaitForExitAsync(bounded.Token);
        }
        catch (OperationCanceledException timedOut)
        {
            process.Kill(entireProcessTree: true);
            if (ct.IsCancellationRequested) throw;
            throw new TimeoutException($"{file} did not finish within {timeout.TotalSeconds:F0} s.", timedOut);
        }
        return new ProcessResult(process.ExitCode, await output, await error);
    }

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
