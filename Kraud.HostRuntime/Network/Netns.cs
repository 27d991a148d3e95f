using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// Sockets inside a host's network namespace for a runtime that itself stays in the machine's own namespace (where its
/// database and queues are). A socket belongs to the namespace of the thread that created it, for good: a short-lived
/// thread joins the namespace (setns), creates the socket and ends; the socket is then used from any thread.
/// </summary>
public static class Netns
{
    private const int CloneNewNet = 0x40000000;

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nsType);

    public static string PathOf(string name) => $"/var/run/netns/{name}";

    /// <summary>Runs <paramref name="action"/> on a thread inside the namespace and returns what it made.</summary>
    public static T Run<T>(string name, Func<T> action)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(PathOf(name));
                if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new IOException($"setns into network namespace {name} failed (errno {Marshal.GetLastPInvokeError()}).");
                result = action();
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        { IsBackground = true, Name = $"netns {name}" };
        thread.Start();
        thread.Join();
        if (error is not null) throw error is IOException or SocketException ? error : new IOException(error.Message, error);
        return result;
    }

    /// <summary>A socket of the namespace: a listener the runtime binds, or an outgoing connection into the VPC.</summary>
    public static Socket Socket(string name, AddressFamily family, SocketType type, ProtocolType protocol) =>
        Run(name, () => new Socket(family, type, protocol));
}

/// <summary>The iproute2, wireguard-tools and nftables commands of the data plane: bounded, and failing loudly with what they said.</summary>
public static class NetCommand
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs the command (with <paramref name="stdin"/> fed to it) and returns its output; throws with its stderr when it fails.</summary>
    public static string Run(string file, IEnumerable<string> args, string? stdin = null, bool allowFailure = false)
    {
        var arguments = args.ToList();
        var result = Drivers.Qemu.ProcessRunner.Run(file, arguments, Timeout, stdin);
        if (result.ExitCode != 0 && !allowFailure)
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed ({result.ExitCode}): {result.Error.Trim()}");
        return result.Output;
    }

    /// <summary><c>ip netns exec NS file args…</c>: wg and nft talk to the namespace's own devices and tables.</summary>
    public static string InNamespace(string ns, string file, IEnumerable<string> args, string? stdin = null, bool allowFailure = false) =>
        Run("ip", ["netns", "exec", ns, file, .. args], stdin, allowFailure);
}
