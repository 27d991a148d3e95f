using System.Runtime.InteropServices;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Storage;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A replica's client losing its connections for a while, as on a network that drops them (<see cref="CutAsync"/>), and
/// the connections a storage daemon has (<see cref="PeersOf"/>).
/// </summary>
public static class ReplicaConnections
{
    private const long PidfdOpen = 434, PidfdGetfd = 438;

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long Syscall(long number, long a, long b, long c);

    [DllImport("libc", EntryPoint = "getpeername", SetLastError = true)]
    private static extern int GetPeerName(int fd, byte[] address, ref uint length);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);

    /// <summary>
    /// The daemon deletes the export of <paramref name="identity"/> (mode hard: its connections close) and serves it again,
    /// unchanged, after <paramref name="away"/>; until then the client's reconnects fail at the NBD handshake.
    /// </summary>
    public static async Task CutAsync(BlockExports host, Guid volumeId, string identity, TimeSpan away)
    {
        var qmp = host.MonitorOf(volumeId);
        await qmp.ExecuteAsync("block-export-del", new Dictionary<string, object> { ["id"] = identity, ["mode"] = "hard" }, CancellationToken.None);
        await Task.Delay(away);
        // The export is gone only once its BLOCK_EXPORT_DELETED came; until then its id is taken.
        await Eventually.Until(async () =>
        {
            try
            {
                await qmp.ExecuteAsync("block-export-add", new Dictionary<string, object>
                {
                    ["type"] = "nbd", ["id"] = identity, ["node-name"] = "replica", ["name"] = identity, ["writable"] = true,
                }, CancellationToken.None);
                return true;
            }
            catch (QmpException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10), $"the export of {identity} is served again");
    }

    /// <summary>The client ports of process <paramref name="pid"/>'s connected IPv4 sockets (a storage daemon's clients).</summary>
    public static IReadOnlySet<int> PeersOf(int pid)
    {
        var peers = new HashSet<int>();
        EachSocket(pid, (_, port) => peers.Add(port));
        return peers;
    }

    private static void EachSocket(int pid, Action<int, int> use)
    {
        var pidfd = (int)Syscall(PidfdOpen, pid, 0, 0);
        if (pidfd < 0) throw new IOException($"pidfd_open({pid}) failed (errno {Marshal.GetLastPInvokeError()}).");
        try
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                if (new FileInfo(entry).LinkTarget is not { } target || !target.StartsWith("socket:", StringComparison.Ordinal)) continue;
                var fd = (int)Syscall(PidfdGetfd, pidfd, int.Parse(Path.GetFileName(entry), System.Globalization.CultureInfo.InvariantCulture), 0);
                if (fd < 0) continue;
                try
                {
                    var address = new byte[128];
                    var length = (uint)address.Length;
                    // AF_INET (2): the port follows the family, in network byte order. A listener or a UNIX socket has no such peer.
                    if (GetPeerName(fd, address, ref length) == 0 && address[0] == 2) use(fd, (address[2] << 8) | address[3]);
                }
                finally
                {
                    Close(fd);
                }
            }
        }
        finally
        {
            Close(pidfd);
        }
    }
}
