using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// QEMU's machine protocol (QMP) over a Unix socket, for QEMU and qemu-storage-daemon alike: one command at a time,
/// events kept until someone asks for them. The block layer's live changes (new replicas, mirrors, scrubs) go through it.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly Stream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly List<JsonElement> _events = [];

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    /// <summary>
    /// Where the QMP socket of whatever lives in <paramref name="directory"/> goes: a Unix socket path holds at most 107
    /// bytes, and state directories nest deeper than that, so sockets live in one short directory, named by a hash.
    /// </summary>
    /// <param name="monitor">A second monitor of the same process (a QEMU's events): its socket is named after the same hash.</param>
    public static string SocketPathFor(string directory, string? monitor = null) =>
        Path.Combine(SocketDirectory(), Hash(directory) + (monitor is null ? "" : "-" + monitor) + ".sock");

    /// <summary>
    /// Removes the sockets <see cref="SocketPathFor"/> gave <paramref name="root"/> and the directories under it, every
    /// monitor's: QEMU leaves its sockets behind when it is killed, and the shared directory outlives every state directory.
    /// </summary>
    public static void RemoveSocketsUnder(string root)
    {
        if (!Directory.Exists(root)) return;
        var sockets = SocketDirectory();
        foreach (var directory in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).Prepend(root))
            foreach (var socket in Directory.EnumerateFiles(sockets, Hash(directory) + "*.sock"))
                File.Delete(socket);
    }

    private static string SocketDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "kraud-qmp");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string Hash(string directory) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(directory))))[..24];

    /// <summary>Connects once the socket accepts (QEMU creates it while starting), within <paramref name="timeout"/>.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                var client = new QmpClient(socket);
                await client.ReadMessageAsync(ct); // the greeting
                await client.ExecuteAsync("qmp_capabilities", null, ct);
                return client;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                await Task.Delay(50, ct);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    public async Task<JsonElement> ExecuteAsync(string command, object? arguments, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var request = new JsonObject { ["execute"] = command };
            if (arguments is not null) request["arguments"] = JsonSerializer.SerializeToNode(arguments);
            var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
            await _stream.WriteAsync(bytes, ct);
            while (true)
            {
                var message = await ReadMessageAsync(ct);
                if (message.TryGetProperty("event", out _))
                {
                    lock (_events) _events.Add(message);
                    continue;
                }
                if (message.TryGetProperty("error", out var error))
                    throw new QmpException(command, error.GetProperty("desc").GetString() ?? "unknown error");
                return message.TryGetProperty("return", out var result) ? result.Clone() : default;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Events seen so far (and taken out of the queue) that match.</summary>
    public IReadOnlyList<JsonElement> TakeEvents(Func<JsonElement, bool> match)
    {
        lock (_events)
        {
            var taken = _events.Where(match).ToList();
            _events.RemoveAll(e => taken.Contains(e));
            return taken;
        }
    }

    /// <summary>Waits for an event, reading the socket while no command is running.</summary>
    public async Task<JsonElement> WaitForEventAsync(string name, Func<JsonElement, bool> match, TimeSpan timeout, CancellationToken ct)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(timeout);
        while (true)
        {
            if (TakeEvents(e => e.GetProperty("event").GetString() == name && match(e)).FirstOrDefault() is { ValueKind: JsonValueKind.Object } seen)
                return seen;
            await _gate.WaitAsync(bounded.Token);
            try
            {
                var message = await ReadMessageAsync(bounded.Token);
                if (message.TryGetProperty("event", out _)) lock (_events) _events.Add(message);
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"QMP event {name} did not come within {timeout.TotalSeconds:F0} s.", e);
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    /// <summary>The next event of any kind, for a connection that only listens (nothing is kept that nobody asked for).</summary>
    public async Task<JsonElement> NextEventAsync(CancellationToken ct)
    {
        while (true)
        {
            lock (_events)
            {
                if (_events.Count > 0)
                {
                    var first = _events[0];
                    _events.RemoveAt(0);
                    return first;
                }
            }
            await _gate.WaitAsync(ct);
            try
            {
                var message = await ReadMessageAsync(ct);
                if (message.TryGetProperty("event", out _)) return message;
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    private async Task<JsonElement> ReadMessageAsync(CancellationToken ct)
    {
        var line = await _reader.ReadLineAsync(ct) ?? throw new IOException("QMP connection closed (the process exited?).");
        using var document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _reader.Dispose();
        _socket.Dispose();
        _gate.Dispose();
    }
}

public sealed class QmpException(string command, string description) : Exception($"QMP {command}: {description}")
{
    public string Description => description;
}
