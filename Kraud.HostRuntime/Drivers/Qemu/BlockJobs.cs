using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>How far a copy has come: bytes done, bytes in all, and the rate since it started.</summary>
public sealed record CopyProgress(long SyncedBytes, long TotalBytes, double BytesPerSecond);

/// <summary>A replica filled and checked: how much was copied, how long it took, how long the guest was paused.</summary>
public sealed record ResyncOutcome(long Bytes, double Seconds, double PauseMs);

/// <summary>A stretch of a volume's replicas, in bytes.</summary>
public sealed record ByteExtent(long Offset, long Length)
{
    public long End => Offset + Length;
}

/// <summary>
/// What a scrub found: every byte read (<paramref name="Bytes"/>), the replicas outvoted or failing reads, and where no majority
/// decides: the first <see cref="UndecidedShown"/> such extents (<paramref name="Undecided"/>, in order), how many
/// there are in all and how many bytes they cover.
/// </summary>
public sealed record ScrubFindings(long Bytes, IReadOnlyList<ReplicaFault> Bad, IReadOnlyList<ByteExtent> Undecided, int UndecidedExtents, long UndecidedBytes)
{
    /// <summary>How many extents no majority decides a scrub names one by one; it counts the rest.</summary>
    public const int UndecidedShown = 8;

    /// <summary>The differences no majority decides, as the owner reads them (null when there are none).</summary>
    public string? Unresolved => UndecidedExtents == 0
        ? null
        : string.Create(CultureInfo.InvariantCulture,
            $"no majority of the replicas agrees on {UndecidedExtents} extent{(UndecidedExtents == 1 ? "" : "s")}, {Size(UndecidedBytes)} in all " +
            $"(each still after {BlockJobs.CompareRetries} reads): ") +
          string.Join(", ", Undecided.Select(e => string.Create(CultureInfo.InvariantCulture, $"at byte {e.Offset} ({Size(e.Length)})"))) +
          (UndecidedExtents > Undecided.Count ? string.Create(CultureInfo.InvariantCulture, $" and {UndecidedExtents - Undecided.Count} more") : "");

    private static string Size(long bytes) => bytes >= 1 << 20
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.#} MiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.#} KiB");
}

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

    /// <summary>The same node as -blockdev text (QEMU's command line). QEMU 7.2's client reconnects after a dropped connection
    /// whatever reconnect-delay says, so a child may come back having missed writes; the guest's quorum never acknowledges
    /// such a write (see <see cref="QuorumVolume"/>), and the host runtime takes the child out.</summary>
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
        var read = await ReadThroughAsync(qmp, quorum, jobId, 0, "the check read", goOn: false, children: null, CompareRetries, ct);
        return read.Stuck.Count == 0
            ? []
            : [string.Create(CultureInfo.InvariantCulture,
                $"the replicas differ at byte {read.Stuck[0].Extent.Offset} ({read.Stuck[0].Extent.Length} bytes; still after {CompareRetries} reads, of {read.Size} bytes)")];
    }

    /// <summary>Where a whole-volume read could not get past: no majority agreed there, or (<paramref name="IoError"/>) a child failed to read it.</summary>
    private sealed record Stuck(ByteExtent Extent, bool IoError);

    /// <param name="Read">How far the read got: <paramref name="Size"/>, or where it stopped.</param>
    /// <param name="Reports">Every QUORUM_REPORT_BAD the read took out of the monitor's queue (the caller names children by them).</param>
    private sealed record ReadThrough(long Size, long Read, IReadOnlyList<Stuck> Stuck, IReadOnlyList<JsonElement> Reports);

    /// <summary>How far a read goes on past a stretch it could not read: QEMU's backup job copies clusters of 64 KiB.</summary>
    private const long SkipAlignment = 64 << 10;

    /// <summary>
    /// Reads all of <paramref name="quorum"/> through backup jobs into a null node, so that the quorum reads (and compares,
    /// as its read pattern and vote threshold say) every block of its children. The children may be written meanwhile by
    /// someone else's connections (a running guest), whose writes reach the replicas one after the other, so a block can
    /// differ for the moment a write is in flight: a read that fails pauses the job (on-source-error stop), and the job is
    /// resumed 250 ms later, which reads those blocks again. A stretch still failing after <paramref name="retries"/>
    /// tries with no progress between them is stuck; so is one at once where a child answered with an I/O error (no write
    /// in flight explains that, and a quorum of two cannot vote with one answer). A backup job cannot skip a block, so with
    /// <paramref name="goOn"/> the read goes on in a new job over a raw window of the quorum that starts past the stretch,
    /// until the end: a scrub reports every difference, not only the first. It stops at a stretch a child failed to read.
    /// </summary>
    /// <param name="bytesPerSecond">The job's speed limit (QEMU's rate limit of block jobs), so that a whole-volume read leaves
    /// the guests on the same hosts their I/O; 0 reads as fast as it can.</param>
    /// <param name="what">Names the read in the exception of a read that failed otherwise.</param>
    /// <param name="children">The quorum's children, whose I/O errors end a stretch at once; null: every failed read is read again.</param>
    /// <param name="retries">How often a failed stretch is read again before it counts (<see cref="CompareRetries"/> while
    /// someone may write the replicas; none when nobody does, as one read then decides).</param>
    private static async Task<ReadThrough> ReadThroughAsync(QmpClient qmp, string quorum, string jobId, long bytesPerSecond, string what, bool goOn,
        IReadOnlySet<string>? children, int retries, CancellationToken ct)
    {
        var nodes = await qmp.ExecuteAsync("query-named-block-nodes", new Dictionary<string, object> { ["flat"] = true }, ct);
        var size = nodes.EnumerateArray().First(n => n.GetProperty("node-name").GetString() == quorum).GetProperty("image").GetProperty("virtual-size").GetInt64();
        var stuck = new List<Stuck>();
        var reports = new List<JsonElement>();
        qmp.TakeEvents(e => Failure(e, quorum));
        for (var from = 0L; from < size;)
        {
            var window = from == 0 ? quorum : jobId + "-rest";
            if (from > 0)
                await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object>
                {
                    ["driver"] = "raw", ["node-name"] = window, ["file"] = quorum, ["offset"] = from, ["size"] = size - from, ["read-only"] = true,
                }, ct);
            Stuck? at;
            try
            {
                at = await ReadWindowAsync(qmp, quorum, window, from, size - from, jobId, bytesPerSecond, what, children, reports, retries, ct);
            }
            finally
            {
                if (window != quorum) await qmp.ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = window }, CancellationToken.None);
            }
            if (at is null) break;
            stuck.Add(at);
            // A child that failed a read with an I/O error lost its connection too (QEMU 7.2's NBD server drops a client whose
            // read failed), so from here on every read of it fails: a quorum that needs it to vote can compare nothing more,
            // and a read that goes on would only be stuck cluster after cluster. The child is named bad and replaced, and the
            // replacement's check compares all of the rest.
            if (!goOn || at.IoError) return new ReadThrough(size, at.Extent.Offset, stuck, reports);
            from = Math.Min(size, Math.Max(from + SkipAlignment, (at.Extent.End + SkipAlignment - 1) / SkipAlignment * SkipAlignment));
        }
        return new ReadThrough(size, size, stuck, reports);
    }

    private static bool Failure(JsonElement e, string quorum) =>
        e.GetProperty("event").GetString() == "QUORUM_FAILURE" && e.GetProperty("data").GetProperty("reference").GetString() == quorum;

    /// <summary>One backup job over <paramref name="window"/> (the quorum from byte <paramref name="from"/> on): null when it read to the end.</summary>
    private static async Task<Stuck?> ReadWindowAsync(QmpClient qmp, string quorum, string window, long from, long length, string jobId, long bytesPerSecond,
        string what, IReadOnlySet<string>? children, List<JsonElement> reports, int retries, CancellationToken ct)
    {
        var sink = jobId + "-sink";
        // An earlier job of the same id (the checker of a previous resync) may have left its end behind, which would end this one at once.
        qmp.TakeEvents(e => e.GetProperty("event").GetString() is "BLOCK_JOB_COMPLETED" or "BLOCK_JOB_CANCELLED"
                            && e.GetProperty("data").GetProperty("device").GetString() == jobId);
        await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object> { ["driver"] = "null-co", ["node-name"] = sink, ["size"] = length }, ct);
        try
        {
            var backup = new Dictionary<string, object>
            {
                ["job-id"] = jobId, ["device"] = window, ["target"] = sink, ["sync"] = "full", ["on-source-error"] = "stop",
            };
            // QEMU's own request size (up to 1 MiB), so a failed read names the MiB around a difference, not its cluster: a job
            // told to read 64 KiB a request (x-perf.max-chunk) asks every replica for its allocation before each one, a round
            // trip over TLS that QEMU 7.2's NBD server answered after TCP's delayed ACK (about 40 ms) before the storage
            // daemons got TCP_NODELAY (DaemonSockets): a resync whose check read so took 76 s for 98 MiB instead of 7
            // (README, blockio); not measured again since.
            if (bytesPerSecond > 0) backup["speed"] = bytesPerSecond;
            await qmp.ExecuteAsync("blockdev-backup", backup, ct);
            var tries = 0;
            var stuckAt = -1L;
            var seen = new List<JsonElement>(); // the failed reads (QEMU's own words) of the stretch the job is stuck at now
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
                    reports.AddRange(qmp.TakeEvents(e => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD"));
                    return null;
                }
                if (!job.GetProperty("paused").GetBoolean() || !job.TryGetProperty("io-status", out var io) || io.GetString() != "failed") continue;
                var offset = job.GetProperty("offset").GetInt64();
                if (offset != stuckAt) seen.Clear();
                tries = offset == stuckAt ? tries + 1 : 1;
                stuckAt = offset;
                var bad = qmp.TakeEvents(e => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD");
                reports.AddRange(bad);
                seen.AddRange(qmp.TakeEvents(e => Failure(e, quorum)));
                var errors = bad.Where(e => children is not null && children.Contains(e.GetProperty("data").GetProperty("node-name").GetString() ?? "")
                                            && e.GetProperty("data").TryGetProperty("error", out _)).ToList();
                seen.AddRange(errors);
                var ioError = seen.Any(e => e.GetProperty("data").TryGetProperty("error", out _) && e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD");
                if (ioError || tries > retries)
                {
                    // QEMU sends at most one QUORUM_FAILURE a second and holds back the rest: a stretch met within a second of
                    // the last one's (no rereads in between when nobody writes) is told when that second is over.
                    if (!ioError && !seen.Any(e => Failure(e, quorum)))
                    {
                        try
                        {
                            seen.Add(await qmp.WaitForEventAsync("QUORUM_FAILURE", e => Failure(e, quorum), TimeSpan.FromSeconds(1.5), ct));
                        }
                        catch (TimeoutException)
                        {
                            // None came: the stretch is the cluster at the job's progress (Where).
                        }
                    }
                    await qmp.ExecuteAsync("block-job-cancel", new Dictionary<string, object> { ["device"] = jobId, ["force"] = true }, ct);
                    await qmp.WaitForEventAsync("BLOCK_JOB_CANCELLED", e => e.GetProperty("data").GetProperty("device").GetString() == jobId,
                        TimeSpan.FromSeconds(30), ct);
                    return new Stuck(Where(seen, from, from + offset), ioError);
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
    /// The stretch the failed reads name (QEMU's sectors; it sends at most one QUORUM_FAILURE a second, so they are examples
    /// of the stretch, not a list), not before the window's start; without any, a cluster at the job's progress. Only the
    /// first stretch: the job reads several requests at once, so reads of a later, separate stretch can fail before it
    /// stops; they are not joined to the first (which would count two extents as one), the next job meets them again.
    /// </summary>
    private static ByteExtent Where(IReadOnlyList<JsonElement> failed, long from, long progress)
    {
        var sectors = failed.Select(e => e.GetProperty("data"))
            .Select(d => (Start: d.GetProperty("sector-num").GetInt64() * 512, End: (d.GetProperty("sector-num").GetInt64() + d.GetProperty("sectors-count").GetInt64()) * 512))
            .Where(x => x.End > from).OrderBy(x => x.Start).ToList();
        if (sectors.Count == 0) return new ByteExtent(progress, SkipAlignment);
        var start = Math.Max(from, sectors[0].Start);
        var end = sectors[0].End;
        foreach (var (s, e) in sectors.Skip(1))
        {
            if (s > end) break;
            end = Math.Max(end, e);
        }
        return new ByteExtent(start, end - start);
    }

    /// <summary>
    /// A scrub: reads all of <paramref name="quorum"/> (voting reads, its threshold a majority of its children) and names
    /// each child the majority outvoted, or that failed a read with an I/O error (QEMU's QUORUM_REPORT_BAD), with where.
    /// <paramref name="children"/> maps the quorum's child nodes to their replicas' hosts. A block with no majority fails its
    /// read and is read again (see <see cref="ReadThroughAsync"/>); blocks still without one are counted in
    /// <see cref="ScrubFindings.Undecided"/>, and the scrub reads on to the end. A block one child failed to read and no
    /// majority of the others could vote on (a RED volume's two copies) is no difference of content: the child that failed
    /// is named, and the others' copy is what the replacement gets.
    /// </summary>
    /// <param name="bytesPerSecond">At most this many bytes a second are read (0: no bound).</param>
    /// <param name="confirm">Someone writes the replicas meanwhile (a running guest): a block without a majority is read again
    /// before it counts as undecided (a write may be in flight), and a child counts as bad only if rereads of its block (HMP
    /// qemu-io, so QEMU's system emulator only), spaced past QEMU's one-event-a-second throttle, still outvote it. Without a
    /// writer one read decides: a scrub of a volume no guest has attached pays no rereads (about 4 s per differing stretch).</param>
    public static async Task<ScrubFindings> VoteAsync(QmpClient qmp, string quorum, IReadOnlyDictionary<string, Guid> children, string jobId,
        long bytesPerSecond, bool confirm, CancellationToken ct)
    {
        bool Bad(JsonElement e) => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD"
                                   && children.ContainsKey(e.GetProperty("data").GetProperty("node-name").GetString() ?? "");
        qmp.TakeEvents(Bad);
        var read = await ReadThroughAsync(qmp, quorum, jobId, bytesPerSecond, "the scrub's read", goOn: true, children.Keys.ToHashSet(), confirm ? CompareRetries : 0, ct);
        // QEMU sends the last report of a node held back by its throttle up to a second later.
        await Task.Delay(1100, ct);
        await qmp.ExecuteAsync("query-block-jobs", null, ct); // any command: it reads the events QEMU sent meanwhile (qemu-storage-daemon has no query-status)
        var suspects = read.Reports.Concat(qmp.TakeEvents(Bad)).Where(Bad).Select(e => e.GetProperty("data"))
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
        var undecided = new List<ByteExtent>();
        foreach (var e in read.Stuck.Where(s => !s.IoError).Select(s => s.Extent))
        {
            // Stretches that touch are one extent: a long difference is stuck at cluster after cluster.
            if (undecided.Count > 0 && e.Offset <= undecided[^1].End)
                undecided[^1] = new ByteExtent(undecided[^1].Offset, Math.Max(undecided[^1].End, e.End) - undecided[^1].Offset);
            else undecided.Add(e);
        }
        return new ScrubFindings(read.Read, bad, undecided.Take(ScrubFindings.UndecidedShown).ToList(), undecided.Count, undecided.Sum(e => e.Length));
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
