using System.Globalization;
using System.Runtime.InteropServices;

namespace Kraud.HostRuntime.Storage;

/// <summary>
/// Turns off Nagle's algorithm on a running process's TCP sockets. QEMU 7.2's NBD server (Debian 12's) never sets
/// TCP_NODELAY and sends each reply as several small TLS records, so with requests in flight a reply waits until the
/// client acknowledges the last one, and the client delays its acknowledgements (up to 40 ms on Linux); upstream fixed
/// it in 8.0 by corking. QEMU's NBD client already sets TCP_NODELAY. The socket is the daemon's: a duplicate of its
/// descriptor (pidfd_getfd, Linux 5.6) refers to the same socket, and connections accepted later inherit the
/// listener's TCP_NODELAY on Linux.
/// </summary>
public static class DaemonSockets
{
    private const long PidfdOpen = 434, PidfdGetfd = 438;
    private const int IpProtoTcp = 6, TcpNoDelay = 1;

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long Syscall(long number, long a, long b, long c);

    [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static extern int SetSockOpt(int fd, int level, int name, ref int value, uint length);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);

    [DllImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static extern int GetSockOpt(int fd, int level, int name, ref int value, ref uint length);

    /// <summary>Sets TCP_NODELAY on every TCP socket of process <paramref name="pid"/> (its listener and any connection so far).</summary>
    /// <returns>How many sockets took it; throws <see cref="IOException"/> when the process's descriptors cannot be reached.</returns>
    public static int SetNoDelay(int pid) => TcpSockets<bool>(pid, fd =>
    {
        var one = 1;
        return SetSockOpt(fd, IpProtoTcp, TcpNoDelay, ref one, sizeof(int)) == 0 ? true : null;
    }).Count;

    /// <summary>Whether each TCP socket of process <paramref name="pid"/> has TCP_NODELAY.</summary>
    public static IReadOnlyList<bool> NoDelayOf(int pid) => TcpSockets<bool>(pid, fd =>
    {
        int value = 0;
        var length = (uint)sizeof(int);
        return GetSockOpt(fd, IpProtoTcp, TcpNoDelay, ref value, ref length) == 0 ? value != 0 : null;
    });

    /// <summary>
    /// Runs <paramref name="use"/> on a duplicate of each socket descriptor of the process; a socket it answers null for
    /// (a UNIX socket, such as the daemon's monitor, refuses a TCP option) is left out.
    /// </summary>
    private static List<T> TcpSockets<T>(int pid, Func<int, T?> use) where T : struct
    {
        var pidfd = (int)Syscall(PidfdOpen, pid, 0, 0);
        if (pidfd < 0) throw new IOException($"pidfd_open({pid}) failed (errno {Marshal.GetLastPInvokeError()}).");
        try
        {
            var found = new List<T>();
            foreach (var entry in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                string? target;
                try
                {
                    target = new FileInfo(entry).LinkTarget;
                }
                catch (IOException)
                {
                    continue; // closed meanwhile
                }
                if (target is null || !target.StartsWith("socket:", StringComparison.Ordinal)) continue;
                var fd = (int)Syscall(PidfdGetfd, pidfd, int.Parse(Path.GetFileName(entry), CultureInfo.InvariantCulture), 0);
                if (fd < 0) throw new IOException($"pidfd_getfd of process {pid} failed (errno {Marshal.GetLastPInvokeError()}).");
                try
                {
                    if (use(fd) is { } result) found.Add(result);
                }
                finally
                {
                    Close(fd);
                }
            }
            return found;
        }
        finally
        {
            Close(pidfd);
        }
    }
}
