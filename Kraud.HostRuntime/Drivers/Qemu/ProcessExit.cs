using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// The end of a long-lived child (QEMU, qemu-storage-daemon, wireguard-go, the registry): SIGKILL, then its exit for real.
/// A process blocked in the kernel (state D: I/O on a loaded disk) dies only when that I/O returns, so a kill is not yet
/// an exit, and whoever reports the child gone must have seen it go. A child that outlives the limit is an error for the
/// caller to report, never a silent success.
/// </summary>
public static class ProcessExit
{
    /// <summary>How long a killed child may take to be gone before its caller fails.</summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan WarnEvery = TimeSpan.FromSeconds(10);

    /// <summary>Kills the child and its descendants, and returns once it has exited (or throws <see cref="ProcessSurvivedKillException"/>).</summary>
    /// <param name="exited">What completes when the caller considers the child gone (its own watcher); the process's exit otherwise.</param>
    public static async Task KillAsync(Process process, string what, ILogger logger, Task? exited = null, TimeSpan? limit = null)
    {
        int pid;
        try
        {
            if (process.HasExited && exited is null) return;
            pid = process.Id;
        }
        catch (InvalidOperationException)
        {
            return; // never started
        }
        // Its descendants get the same SIGKILL, but they are not ours to wait for: their exits are polled after its own.
        var descendants = DescendantsOf(pid);
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { } // it exited meanwhile
        var waited = Stopwatch.StartNew();
        await WaitAsync(exited ?? process.WaitForExitAsync(CancellationToken.None), pid, what, logger, limit ?? DefaultLimit);
        foreach (var descendant in descendants)
            while (IsAlive(descendant))
            {
                if (waited.Elapsed >= (limit ?? DefaultLimit))
                    throw new ProcessSurvivedKillException($"a child (pid {descendant}) of {what} is still alive {waited.Elapsed.TotalSeconds:F0} s after SIGKILL ({StateOf(descendant)})");
                await Task.Delay(10);
            }
    }

    /// <summary>The processes below <paramref name="root"/> now, from each process's parent in /proc.</summary>
    private static List<int> DescendantsOf(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { }
        }
        var found = new List<int>();
        var frontier = new Queue<int>([root]);
        while (frontier.TryDequeue(out var parent))
            foreach (var (child, _) in parents.Where(p => p.Value == parent))
            {
                found.Add(child);
                frontier.Enqueue(child);
            }
        return found;
    }

    /// <summary>Waits for <paramref name="exited"/>, warning every few seconds with the process's state; throws when the limit passes.</summary>
    public static async Task WaitAsync(Task exited, int pid, string what, ILogger logger, TimeSpan limit)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var left = limit - waited.Elapsed;
            try
            {
                await exited.WaitAsync(left < WarnEvery ? left > TimeSpan.Zero ? left : TimeSpan.Zero : WarnEvery);
                return;
            }
            catch (TimeoutException)
            {
                if (waited.Elapsed >= limit)
                    throw new ProcessSurvivedKillException(
                        $"{what} (pid {pid}) is still alive {waited.Elapsed.TotalSeconds:F0} s after SIGKILL ({StateOf(pid)})");
                logger.LogWarning("{What} (pid {Pid}) is still alive {Seconds:F0} s after SIGKILL ({State}); waiting for its exit",
                    what, pid, waited.Elapsed.TotalSeconds, StateOf(pid));
            }
        }
    }

    /// <summary>Kills a process that is not our child (a leftover found by its pidfile) and polls until it is gone.</summary>
    public static void KillForeign(int pid, string what, ILogger logger, TimeSpan? limit = null)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { }
        var deadline = Stopwatch.StartNew();
        var warned = TimeSpan.Zero;
        while (IsAlive(pid))
        {
            if (deadline.Elapsed >= (limit ?? DefaultLimit))
                throw new ProcessSurvivedKillException($"{what} (pid {pid}) is still alive {deadline.Elapsed.TotalSeconds:F0} s after SIGKILL ({StateOf(pid)})");
            if (deadline.Elapsed - warned >= WarnEvery)
            {
                warned = deadline.Elapsed;
                logger.LogWarning("{What} (pid {Pid}) is still alive {Seconds:F0} s after SIGKILL ({State})", what, pid, warned.TotalSeconds, StateOf(pid));
            }
            Thread.Sleep(20);
        }
    }

    /// <summary>A zombie has exited; whoever parents it will reap it.</summary>
    public static bool IsAlive(int pid) => State(pid) is { } state && state is not 'Z' and not 'X';

    /// <summary>For failure messages: the kernel's state letter of the process and where it sleeps (wchan).</summary>
    public static string StateOf(int pid)
    {
        if (State(pid) is not { } state) return "gone";
        string wchan;
        try
        {
            wchan = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/wchan").Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            wchan = "";
        }
        return wchan is "" or "0" ? $"state {state}" : $"state {state}, waiting in {wchan}";
    }

    private static char? State(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault();
        }
        catch (IOException)
        {
            return null;
        }
    }
}

/// <summary>A killed child did not exit within the limit: it still holds what it held (a disk, a port, a key in memory).</summary>
public sealed class ProcessSurvivedKillException(string message) : Exception(message);
