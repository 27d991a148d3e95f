using System.Globalization;
using System.Text;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Logs;

/// <summary>One line a workload wrote, stamped by its host runtime when it arrived.</summary>
public sealed record WorkloadLogLine(Guid TenantId, Guid PodId, Guid VmId, int Replica, DateTimeOffset At, string Stream, string Line);

/// <summary>Where a host runtime sends its workloads' lines besides its own files (the control plane's log store).</summary>
public interface IWorkloadLogSink
{
    void Enqueue(WorkloadLogLine line);
}

/// <summary>
/// The log of one microVM's workload on its host: each line of stdout and stderr, timestamped as it arrives and named by
/// its stream, appended to hosts/&lt;host&gt;/logs/&lt;vm id&gt;.log in the CRI logging format kubelet writes
/// (<c>2025-01-01T00:00:00.123456789Z stdout F text</c>; P marks a line split because it was too long), and handed to the
/// sink. At <see cref="MaxFileBytes"/> the file is rotated once (.1), as Docker's json-file driver does with max-file=2.
/// </summary>
public sealed class WorkloadLog : IDisposable
{
    public const int MaxLineBytes = 16 * 1024;
    public const long MaxFileBytes = 10 * 1024 * 1024;

    private readonly MicroVmSpec _spec;
    private readonly IWorkloadLogSink? _sink;
    private readonly Lock _lock = new();
    private StreamWriter? _file;

    public WorkloadLog(string path, MicroVmSpec spec, IWorkloadLogSink? sink)
    {
        Path = path;
        _spec = spec;
        _sink = sink;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        _file = Open();
    }

    public string Path { get; }

    private StreamWriter Open() => new(new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite), new UTF8Encoding(false)) { AutoFlush = true };

    public void Append(string stream, string line, DateTimeOffset at, bool partial = false)
    {
        // PostgreSQL text holds no NUL, and a terminal escape sequence is the workload's business, not ours.
        line = line.Replace('\0', '\uFFFD');
        lock (_lock)
        {
            if (_file is null) return;
            _file.Write(at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
            _file.Write(' ');
            _file.Write(stream);
            _file.Write(partial ? " P " : " F ");
            _file.Write(line);
            _file.Write('\n');
            if (_file.BaseStream.Length >= MaxFileBytes)
            {
                _file.Dispose();
                File.Move(Path, Path + ".1", overwrite: true);
                _file = Open();
            }
        }
        _sink?.Enqueue(new WorkloadLogLine(_spec.TenantId, _spec.PodId, _spec.VmId, _spec.Replica, at, stream, line));
    }

    /// <summary>Reads one of the workload's streams to its end, line by line, each stamped with the time its bytes were read.</summary>
    public async Task PumpAsync(Stream source, string stream)
    {
        var pending = new MemoryStream();
        var buffer = new byte[8192];
        while (true)
        {
            int read;
            try
            {
                read = await source.ReadAsync(buffer);
            }
            catch (IOException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            if (read == 0) break;
            var at = DateTimeOffset.UtcNow;
            var start = 0;
            for (var i = 0; i < read; i++)
            {
                if (buffer[i] != (byte)'\n') continue;
                pending.Write(buffer, start, i - start);
                Emit(stream, pending, at, partial: false);
                start = i + 1;
            }
            pending.Write(buffer, start, read - start);
            while (pending.Length >= MaxLineBytes)
            {
                var whole = pending.ToArray();
                pending.SetLength(0);
                Append(stream, Encoding.UTF8.GetString(whole, 0, MaxLineBytes), at, partial: true);
                pending.Write(whole, MaxLineBytes, whole.Length - MaxLineBytes);
            }
        }
        if (pending.Length > 0) Emit(stream, pending, DateTimeOffset.UtcNow, partial: false);
    }

    private void Emit(string stream, MemoryStream pending, DateTimeOffset at, bool partial)
    {
        var bytes = pending.ToArray();
        pending.SetLength(0);
        var length = bytes.Length > 0 && bytes[^1] == (byte)'\r' ? bytes.Length - 1 : bytes.Length;
        Append(stream, Encoding.UTF8.GetString(bytes, 0, length), at, partial);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _file?.Dispose();
            _file = null;
        }
    }
}
