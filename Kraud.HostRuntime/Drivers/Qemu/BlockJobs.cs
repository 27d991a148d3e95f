using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>How far a copy has come: bytes done, bytes in all, and the rate since it started.</summary>
public sealed record CopyProgress(long SyncedBytes, long TotalBytes, double BytesPerSecond);

/// <summary>A replica filled and checked: how much was copied, how long it took, how long the guest was paused.</summary>
public sealed record ResyncOutcome(long Bytes, double Seconds, double PauseMs);

/// <summary>What a scrub found: every byte read (<paramref name="Bytes"/>), the replicas outvoted, and a difference no majority decides.</summary>
public sealed record ScrubFindings(long Bytes, IReadOnlyList<ReplicaFault> Bad, string? Unresolved);

public sealed class ResyncException(string reason) : Exception(reason);

/// <summary>
/// QEMU block-layer steps shared by a microVM's QEMU (online) and a worker's qemu-storage-daemon (offline): NBD nodes for
/// replica exports, a mirror job watched to READY with its progress, and the scrub that proves a replica equals its peers.
/// </summary>
internal static class BlockJobs
{
    /// <summary>Options of a client NBD node for one replica's export: TLS-PSK with the client's identity, which also names its export.</summary>
    public static Dictionary<string, object> NbdNode(string nodeName, ExportEndpoint export, ExportAccess access, string tlsCredsId) => new()
    {
        ["driver"] = "nbd", ["node-name"] = nodeName,
        ["server"] = new Dictionary<string, object>
        {
            ["type"] = "inet", ["host"] = export.Address, ["port"] = export.Port.ToString(CultureInfo.InvariantCulture),
        },
        ["export"] = access.Identity, ["tls-creds"] = tlsCredsId, ["open-timeout"] = OpenTimeoutSeconds,
    };

    /// <summary>
    /// A grant reaches the storage hosts on their own queues, beside the boot command to the compute host: the first
    /// connection may come before the export admits it, so opening is tried again for this long.
    /// </summary>
    public const int OpenTimeoutSeconds = 15;

    /// <summary>The same node as -blockdev text (QEMU's command line); a replica that fails is never reconnected (reconnect-delay 0):
    /// it left the quorum for good and comes back only as a new, resynced replica.</summary>
    public static string NbdArg(string nodeName, ExportEndpoint export, ExportAccess access, string tlsCredsId) =>
        $"driver=nbd,node-name={nodeName},server.type=inet,server.host={export.Address},server.port={export.Port.ToString(CultureInfo.InvariantCulture)}," +
        $"export={access.Identity},tls-creds={tlsCredsId},open-timeout={OpenTimeoutSeconds}";

    /// <summary>
    /// The ciphers of the NBD connections, on both ends: AES-GCM only. Left to its defaults, gnutls negotiated
    /// CHACHA20-POLY1305 here, and nettle's ChaCha and Poly1305 took half of a storage daemon's cpu and halved a BLOCK
    /// volume's throughput (measured with qemu-io through LUKS over a quorum of three exports: 22-33 MiB/s written, 57-60
    /// with AES-GCM), while AES-GCM runs on the cpu's AES instructions (4 GB/s in openssl on these machines).
    /// </summary>
    public const string TlsPriority = "NORMAL:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM";

    /// <summary>A tls-creds-psk object (QEMU's -object/--object syntax) for one end of a replica's NBD connection.</summary>
    /// <param name="username">The client's identity; a server has none (it reads every identity's key from the file).</param>
    public static string TlsCreds(string id, string endpoint, string pskDirectory, string? username = null) =>
        $"tls-creds-psk,id={id},endpoint={endpoint},dir={QemuOption.Value(pskDirectory)},priority={TlsPriority}" +
        (username is null ? "" : $",username={username}");

    /// <summary>The client's key file for gnutls (identity:hex key), 0600, in a directory of its own as QEMU's tls-creds-psk wants it.</summary>
    public static string WritePskDirectory(string directory, ExportAccess access)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "keys.psk");
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var writer = new StreamWriter(new FileStream(path, options))) writer.Write($"{access.Identity}:{access.Psk}\n");
        return directory;
    }

    /// <summary>
    /// Runs a mirror job until it is READY (source and target converged; with write-blocking, every guest write since goes
    /// to both), reporting progress about once a second.
    /// </summary>
    public static async Task MirrorUntilReadyAsync(QmpClient qmp, string jobId, string source, string target, Func<CopyProgress, Task> progress,
        CancellationToken ct)
    {
        await qmp.ExecuteAsync("blockdev-mirror", new Dictionary<string, object>
        {
            ["job-id"] = jobId, ["device"] = source, ["target"] = target, ["sync"] = "full", ["copy-mode"] = "write-blocking",
        }, ct);
        var started = Stopwatch.GetTimestamp();
        var lastReport = TimeSpan.Zero;
        while (true)
        {
            var jobs = await qmp.ExecuteAsync("query-block-jobs", null, ct);
            var job = jobs.EnumerateArray().FirstOrDefault(j => j.GetProperty("device").GetString() == jobId);
            if (job.ValueKind != JsonValueKind.Object)
            {
                var done = qmp.TakeEvents(e => e.GetProperty("event").GetString() is "BLOCK_JOB_COMPLETED" or "BLOCK_JOB_ERROR").FirstOrDefault();
                var error = done.ValueKind == JsonValueKind.Object && done.GetProperty("data").TryGetProperty("error", out var m) ? m.GetString() : "it ended";
                throw new ResyncException($"the mirror stopped before it converged: {error}");
            }
            var elapsed = Stopwatch.GetElapsedTime(started);
            var offset = job.GetProperty("offset").GetInt64();
            var length = job.GetProperty("len").GetInt64();
            if (job.GetProperty("ready").GetBoolean())
            {
                await progress(new CopyProgress(length, length, length / Math.Max(elapsed.TotalSeconds, 0.001)));
                return;
            }
            if (elapsed - lastReport >= TimeSpan.FromSeconds(1))
            {
                lastReport = elapsed;
                await progress(new CopyProgress(offset, length, offset / Math.Max(elapsed.TotalSeconds, 0.001)));
            }
            await Task.Delay(200, ct);
        }
    }

    /// <summary>Ends a READY mirror without pivoting: the target is then a point-in-time copy of the source (QEMU's block-job-cancel on a ready job).</summary>
    public static async Task FinishMirrorAsync(QmpClient qmp, string jobId, CancellationToken ct)
    {
        await qmp.ExecuteAsync("block-job-cancel", new Dictionary<string, object> { ["device"] = jobId }, ct);
        var done = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", e => e.GetProperty("data").GetProperty("device").GetString() == jobId,
            TimeSpan.FromSeconds(60), ct);
        if (done.GetProperty("data").TryGetProperty("error", out var error)) throw new ResyncException($"the mirror failed at its end: {error.GetString()}");
    }

    /// <summary>How often a check read that found replicas differing is tried again, without the check getting further, before the difference counts.</summary>
    public const int CompareRetries = 8;

    /// <summary>
    /// Reads all of <paramref name="quorum"/> (a quorum whose vote threshold is its number of children, so a read fails
    /// unless every child returns the same bytes) and returns where its children differ: empty means they all hold the same
    /// bytes (see <see cref="ReadThroughAsync"/> for a block written while it is read).
    /// </summary>
    public static async Task<IReadOnlyList<string>> CompareAsync(QmpClient qmp, string quorum, string jobId, CancellationToken ct)
    {
        bool Failure(JsonElement e) => e.GetProperty("event").GetString() == "QUORUM_FAILURE" && e.GetProperty("data").GetProperty("reference").GetString() == quorum;
        qmp.TakeEvents(Failure);
        var (size, stuckAt) = await ReadThroughAsync(qmp, quorum, jobId, 0, "the check read", ct);
        var failures = qmp.TakeEvents(Failure);
        if (stuckAt is null) return [];
        // QEMU sends at most one QUORUM_FAILURE a second: where it says is an example, not the list.
        var where = failures.Select(e => e.GetProperty("data").GetProperty("sector-num").GetInt64()).Distinct().Take(3).ToList();
        return [where.Count == 0
            ? $"the replicas differ (still after {CompareRetries} reads, {stuckAt} of {size} bytes checked)"
            : $"the replicas differ at sector {string.Join(", ", where)} (still after {CompareRetries} reads)"];
    }

    /// <summary>
    /// Reads all of <paramref name="quorum"/> through a backup job into a null node, so that the quorum reads (and compares,
    /// as its read pattern and vote threshold say) every block of its children. The children may be written meanwhile by
    /// someone else's connections (a running guest), whose writes reach the replicas one after the other, so a block can
    /// differ for the moment a write is in flight: a read that fails pauses the job (on-source-error stop), and the job is
    /// resumed 250 ms later, which reads those blocks again. Returns the quorum's size and, when a block still failed after
    /// <see cref="CompareRetries"/> tries with no progress between them, the byte the read stopped at.
    /// </summary>
    /// <param name="bytesPerSecond">The job's speed limit (QEMU's rate limit of block jobs), so that a whole-volume read leaves
    /// the guests on the same hosts their I/O; 0 reads as fast as it can.</param>
    /// <param name="what">Names the read in the exception of a read that failed otherwise.</param>
    private static async Task<(long Size, long? StuckAt)> ReadThroughAsync(QmpClient qmp, string quorum, string jobId, long bytesPerSecond, string what,
        CancellationToken ct)
    {
        var nodes = await qmp.ExecuteAsync("query-named-block-nodes", new Dictionary<string, object> { ["flat"] = true }, ct);
        var size = nodes.EnumerateArray().First(n => n.GetProperty("node-name").GetString() == quorum).GetProperty("image").GetProperty("virtual-size").GetInt64();
        var sink = jobId + "-sink";
        // An earlier job of the same id (the checker of a previous resync) may have left its end behind, which would end this one at once.
        qmp.TakeEvents(e => e.GetProperty("event").GetString() is "BLOCK_JOB_COMPLETED" or "BLOCK_JOB_CANCELLED"
                            && e.GetProperty("data").GetProperty("device").GetString() == jobId);
        await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object> { ["driver"] = "null-co", ["node-name"] = sink, ["size"] = size }, ct);
        try
        {
            var backup = new Dictionary<string, object>
            {
                ["job-id"] = jobId, ["device"] = quorum, ["target"] = sink, ["sync"] = "full", ["on-source-error"] = "stop",
            };
            if (bytesPerSecond > 0) backup["speed"] = bytesPerSecond;
            await qmp.ExecuteAsync("blockdev-backup", backup, ct);
            var tries = 0;
            var stuckAt = -1L;
            while (true)
            {
                await Task.Delay(200, ct);
                var jobs = await qmp.ExecuteAsync("query-block-jobs", null, ct);
                var job = jobs.EnumerateArray().FirstOrDefault(j => j.GetProperty("device").GetString() == jobId);
                if (job.ValueKind != JsonValueKind.Object)
                {
                    var done = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", e => e.GetProperty("data").GetProperty("device").GetString() == jobId,
                        TimeSpan.FromSeconds(30), ct);
                    if (done.GetProperty("data").TryGetProperty("error", out var error)) throw new ResyncException($"{what} failed: {error.GetString()}");
                    return (size, null);
                }
                if (!job.GetProperty("paused").GetBoolean() || !job.TryGetProperty("io-status", out var io) || io.GetString() != "failed") continue;
                var offset = job.GetProperty("offset").GetInt64();
                tries = offset == stuckAt ? tries + 1 : 1;
                stuckAt = offset;
                if (tries > CompareRetries)
                {
                    await qmp.ExecuteAsync("block-job-cancel", new Dictionary<string, object> { ["device"] = jobId, ["force"] = true }, ct);
                    await qmp.WaitForEventAsync("BLOCK_JOB_CANCELLED", e => e.GetProperty("data").GetProperty("device").GetString() == jobId,
                        TimeSpan.FromSeconds(30), ct);
                    return (size, stuckAt);
                }
                await Task.Delay(250, ct);
                await qmp.ExecuteAsync("block-job-resume", new Dictionary<string, object> { ["device"] = jobId }, ct);
            }
        }
        finally
        {
            await qmp.ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = sink }, CancellationToken.None);
        }
    }

    /// <summary>
    /// A scrub: reads all of <paramref name="quorum"/> (voting reads, its threshold a majority of its children) and names
    /// each child the majority outvoted (QEMU's QUORUM_REPORT_BAD) with where. <paramref name="children"/> maps the quorum's
    /// child nodes to their replicas' hosts. A block with no majority fails its read and is read again (see
    /// <see cref="ReadThroughAsync"/>); a block still without one is <see cref="ScrubFindings.Unresolved"/> and ends the scrub.
    /// </summary>
    /// <param name="bytesPerSecond">At most this many bytes a second are read (0: no bound).</param>
    /// <param name="confirm">Someone writes the replicas meanwhile (a running guest): a child counts as bad only if rereads of
    /// its block (HMP qemu-io, so QEMU's system emulator only), spaced past QEMU's one-event-a-second throttle, still outvote it.</param>
    public static async Task<ScrubFindings> VoteAsync(QmpClient qmp, string quorum, IReadOnlyDictionary<string, Guid> children, string jobId,
        long bytesPerSecond, bool confirm, CancellationToken ct)
    {
        bool Bad(JsonElement e) => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD"
                                   && children.ContainsKey(e.GetProperty("data").GetProperty("node-name").GetString() ?? "");
        qmp.TakeEvents(Bad);
        var (size, stuckAt) = await ReadThroughAsync(qmp, quorum, jobId, bytesPerSecond, "the scrub's read", ct);
        var unresolved = stuckAt is { } at
            ? $"no majority of the replicas agrees on the block after byte {at} (still after {CompareRetries} reads); the scrub stopped there"
            : null;
        // QEMU sends the last report of a node held back by its throttle up to a second later.
        await Task.Delay(1100, ct);
        await qmp.ExecuteAsync("query-block-jobs", null, ct); // any command: it reads the events QEMU sent meanwhile (qemu-storage-daemon has no query-status)
        var suspects = qmp.TakeEvents(Bad).Select(e => e.GetProperty("data"))
            .Select(d => (Node: d.GetProperty("node-name").GetString()!, Sector: d.GetProperty("sector-num").GetInt64(),
                Count: d.GetProperty("sectors-count").GetInt64(),
                Detail: $"{d.GetProperty("type").GetString()} " + (d.TryGetProperty("error", out var m) ? $"failed: {m.GetString()}" : "outvoted by its peers")))
            .GroupBy(x => x.Node).Select(g => g.First()).ToList();
        var bad = new List<ReplicaFault>();
        foreach (var s in suspects)
        {
            if (confirm && !await StillOutvotedAsync(qmp, quorum, s.Node, s.Sector, s.Count, ct)) continue;
            bad.Add(new ReplicaFault(children[s.Node], s.Sector * 512, s.Count * 512, s.Detail));
        }
        return new ScrubFindings(size, bad, unresolved);
    }

    /// <summary>How often a suspect block is read again while the guest runs; each read must outvote the same child.</summary>
    public const int ConfirmReads = 3;

    private static async Task<bool> StillOutvotedAsync(QmpClient qmp, string quorum, string node, long sector, long count, CancellationToken ct)
    {
        for (var i = 0; i < ConfirmReads; i++)
        {
            // Past the throttle's window (a second, re-armed by the report it held back), so this read's report comes at once.
            await Task.Delay(2100, ct);
            await qmp.ExecuteAsync("query-block-jobs", null, ct); // any command: it reads the events QEMU sent meanwhile (qemu-storage-daemon has no query-status)
            qmp.TakeEvents(e => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD");
            var read = string.Create(CultureInfo.InvariantCulture, $"read -q {sector * 512} {count * 512}");
            await qmp.ExecuteAsync("human-monitor-command", new Dictionary<string, object> { ["command-line"] = $"qemu-io {quorum} \"{read}\"" }, ct);
            try
            {
                await qmp.WaitForEventAsync("QUORUM_REPORT_BAD", e => e.GetProperty("data").GetProperty("node-name").GetString() == node,
                    TimeSpan.FromSeconds(1.5), ct);
            }
            catch (TimeoutException)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Reads the whole quorum through a backup job into a null node: the quorum compares every block of its children (its
    /// read pattern is "quorum") and names a child that differs in QUORUM_REPORT_BAD. Returns what it said about
    /// <paramref name="child"/>; empty means the child holds what its peers hold.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ScrubAsync(QmpClient qmp, string quorum, string child, string jobId, CancellationToken ct)
    {
        var nodes = await qmp.ExecuteAsync("query-named-block-nodes", new Dictionary<string, object> { ["flat"] = true }, ct);
        var size = nodes.EnumerateArray().First(n => n.GetProperty("node-name").GetString() == quorum).GetProperty("image").GetProperty("virtual-size").GetInt64();
        var sink = jobId + "-sink";
        qmp.TakeEvents(e => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD");
        await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object> { ["driver"] = "null-co", ["node-name"] = sink, ["size"] = size }, ct);
        try
        {
            await qmp.ExecuteAsync("blockdev-backup", new Dictionary<string, object>
            {
                ["job-id"] = jobId, ["device"] = quorum, ["target"] = sink, ["sync"] = "full",
            }, ct);
            var done = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", e => e.GetProperty("data").GetProperty("device").GetString() == jobId,
                TimeSpan.FromMinutes(30), ct);
            if (done.GetProperty("data").TryGetProperty("error", out var error)) throw new ResyncException($"the check read failed: {error.GetString()}");
        }
        finally
        {
            await qmp.ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = sink }, CancellationToken.None);
        }
        return qmp.TakeEvents(e => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD")
            .Select(e => e.GetProperty("data"))
            .Where(d => d.GetProperty("node-name").GetString() == child)
            .Select(d => $"{d.GetProperty("type").GetString()} at sector {d.GetProperty("sector-num").GetInt64()}"
                         + (d.TryGetProperty("error", out var m) ? $": {m.GetString()}" : " differs from its peers"))
            .ToList();
    }
}
