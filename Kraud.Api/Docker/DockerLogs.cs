using System.Buffers.Binary;
using System.Text;
using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Docker;

/// <summary>
/// `docker logs [-f] [--tail N] [-t] [--since]`: the pod's workload lines (every replica's) from the same store podLogs
/// reads, in Docker's multiplexed stream format (an 8-byte header per frame names stdout or stderr and the length).
/// With follow the stream stays open until the client goes, the container is stopped or removed.
/// </summary>
public static class DockerLogs
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    public static void Map(WebApplication app) => DockerApiServer.Route(app, "GET", "/containers/{id}/logs", LogsAsync);

    private static async Task<IResult> LogsAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, (string)call.Http.GetRouteValue("id")!);
        var (stdout, stderr) = (call.Flag("stdout"), call.Flag("stderr"));
        if (!stdout && !stderr) throw DomainException.Validation("Bad parameters: you must choose at least one stream");
        int? tail = call.Query("tail") is { Length: > 0 } t && t != "all"
            ? int.TryParse(t, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n : throw DomainException.Validation($"--tail {t} is not a number")
            : null;
        DateTime? since = call.Query("since") is { Length: > 0 } s && s != "0"
            ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds)
                ? DateTime.UnixEpoch.AddSeconds(seconds)
                : throw DomainException.Validation($"--since {s} is not a time")
            : null;
        var timestamps = call.Flag("timestamps");
        var follow = call.Flag("follow");
        var logs = call.Service<IWorkloadLogs>();
        var session = call.Service<IQuerySession>();
        var http = call.Http;
        var ct = http.RequestAborted;

        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "application/vnd.docker.raw-stream";
        var lines = await logs.ReadAsync(pod.TenantId, pod.Id, null, tail, since, 0, ct);
        var last = lines.Count > 0 ? lines[^1].Id : tail is null ? 0 : await logs.LastIdAsync(pod.TenantId, pod.Id, ct);
        try
        {
            while (true)
            {
                foreach (var line in lines.Where(l => l.Stream == "stderr" ? stderr : stdout))
                    await WriteFrameAsync(http.Response.Body, line, timestamps, ct);
                if (lines.Count > 0) last = lines[^1].Id;
                await http.Response.Body.FlushAsync(ct);
                if (!follow) break;
                if (lines.Count == 0 && await session.LoadAsync<PodView>(pod.Id, ct) is not { Pod: { Gone: false, Halted: false } }) break;
                await Task.Delay(Poll, ct);
                lines = await logs.ReadAsync(pod.TenantId, pod.Id, null, null, since, last, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        return Results.Empty;
    }

    /// <summary>One frame of Docker's stream multiplexing: stream (1 stdout, 2 stderr), three zero bytes, the payload's length big-endian.</summary>
    internal static async Task WriteFrameAsync(Stream body, LogLineDto line, bool timestamps, CancellationToken ct)
    {
        var text = (timestamps ? line.At.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture) + " " : "") + line.Line + "\n";
        var payload = Encoding.UTF8.GetBytes(text);
        var frame = new byte[8 + payload.Length];
        frame[0] = line.Stream == "stderr" ? (byte)2 : (byte)1;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4, 4), (uint)payload.Length);
        payload.CopyTo(frame, 8);
        await body.WriteAsync(frame, ct);
    }
}
