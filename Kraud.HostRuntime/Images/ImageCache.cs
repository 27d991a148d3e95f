using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.HostRuntime.Images;

/// <summary>
/// One host's image cache, shared by all its microVMs: blobs (layers, configs, manifests) stored by their SHA-256 digest
/// and only after their bytes matched it, and the read-only root filesystems built from them, one per manifest digest.
/// Its size is capped: when a pull takes it above <see cref="CapBytes"/>, the least recently used entries that no running
/// microVM or pull holds are deleted (last use is the file's modification time, set on every use).
/// </summary>
public sealed class ImageCache
{
    private readonly ConcurrentDictionary<string, Lazy<BlobDownload>> _downloads = new();
    private readonly Dictionary<string, int> _pins = [];
    private readonly Lock _lock = new();
    private readonly ILogger _logger;

    public ImageCache(string directory, long capBytes, ILogger? logger = null)
    {
        Directory = Path.GetFullPath(directory);
        CapBytes = capBytes;
        _logger = logger ?? NullLogger.Instance;
        System.IO.Directory.CreateDirectory(BlobsDirectory);
        System.IO.Directory.CreateDirectory(RootfsDirectory);
        // Half-written downloads and builds of a previous run are worth nothing: their digests were never checked.
        if (System.IO.Directory.Exists(TempDirectory)) System.IO.Directory.Delete(TempDirectory, recursive: true);
        System.IO.Directory.CreateDirectory(TempDirectory);
        // A root filesystem is built in place and complete once its run config is there: one without it is a build that broke off.
        foreach (var rootfs in System.IO.Directory.EnumerateFiles(RootfsDirectory, "*.erofs"))
            if (!File.Exists(Path.ChangeExtension(rootfs, ".json"))) File.Delete(rootfs);
    }

    /// <summary>
    /// The size a root filesystem under construction shows a microVM that boots while it is built (see
    /// <see cref="PrepareRootfs"/>): a sparse file, larger than any image; reads past what mkfs.erofs wrote are zeros.
    /// </summary>
    public const long PendingRootfsBytes = 1L << 40;

    public string Directory { get; }
    public long CapBytes { get; }
    public string BlobsDirectory => Path.Combine(Directory, "blobs", "sha256");
    public string RootfsDirectory => Path.Combine(Directory, "rootfs");
    public string TempDirectory => Path.Combine(Directory, "tmp");

    public string BlobPath(string digest) => Path.Combine(BlobsDirectory, Digests.Hex(digest));

    public string RootfsPath(string manifestDigest) => Path.Combine(RootfsDirectory, Digests.Hex(manifestDigest) + ".erofs");

    public string RunConfigPath(string manifestDigest) => Path.Combine(RootfsDirectory, Digests.Hex(manifestDigest) + ".json");

    /// <summary>
    /// Creates the file a root filesystem will be built into (in place, at <see cref="RootfsPath"/>), sparse and of
    /// <see cref="PendingRootfsBytes"/>, so that a microVM can open it as its disk before the build: the size QEMU sees is
    /// the size at its open, and mkfs.erofs truncates and writes the same inode. It stays invisible to the cache (neither
    /// loaded nor counted) until its run config is written.
    /// </summary>
    public string PrepareRootfs(string manifestDigest)
    {
        var path = RootfsPath(manifestDigest);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite);
        file.SetLength(PendingRootfsBytes);
        return path;
    }

    /// <summary>Removes the file <see cref="PrepareRootfs"/> made when its build failed before it was complete.</summary>
    public void DiscardPendingRootfs(string manifestDigest)
    {
        if (!File.Exists(RunConfigPath(manifestDigest))) File.Delete(RootfsPath(manifestDigest));
    }

    /// <summary>True (and marked as used now) when the blob is here.</summary>
    public bool HasBlob(string digest) => Touch(BlobPath(digest));

    public bool HasRootfs(string manifestDigest) => File.Exists(RunConfigPath(manifestDigest)) && Touch(RootfsPath(manifestDigest)) && Touch(RunConfigPath(manifestDigest));

    /// <summary>
    /// The blob's bytes to read while they arrive: from the cache when it has the blob, else from the download under way
    /// (started here or joined; concurrent requests for one digest share one download, which checks size and digest as the
    /// bytes arrive and moves the blob in only when they match). The stream ends only once the whole blob matched its digest, and throws the download's
    /// error otherwise, so nothing read from it is trusted before <c>Downloaded</c> completed.
    /// </summary>
    public (Stream Content, Task<long> Downloaded) OpenBlob(Descriptor blob, Func<CancellationToken, Task<BlobResponse>> open, Action<long>? progress,
        CancellationToken ct)
    {
        if (HasBlob(blob.Digest))
            try
            {
                return (new FileStream(BlobPath(blob.Digest), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16),
                    Task.FromResult(0L));
            }
            catch (FileNotFoundException)
            {
                // evicted between the check and the open: download it again
            }
        var download = Download(blob, open, progress, ct);
        return (download.OpenReader(ct), download.Completion);
    }

    private BlobDownload Download(Descriptor blob, Func<CancellationToken, Task<BlobResponse>> open, Action<long>? progress, CancellationToken ct)
    {
        var entry = _downloads.GetOrAdd(blob.Digest, digest => new Lazy<BlobDownload>(() =>
            new BlobDownload(BlobPath(digest), Path.Combine(TempDirectory, $"{Digests.Hex(digest)}.{Guid.NewGuid():N}.partial"))));
        var download = entry.Value;
        download.StartOnce(() => ForgetWhenDone(blob.Digest, entry, DownloadAsync(blob, download, open, progress, ct)));
        return download;
    }

    private async Task<long> ForgetWhenDone(string digest, Lazy<BlobDownload> entry, Task<long> download)
    {
        try
        {
            return await download;
        }
        finally
        {
            _downloads.TryRemove(new KeyValuePair<string, Lazy<BlobDownload>>(digest, entry));
        }
    }

    private static async Task<long> DownloadAsync(Descriptor blob, BlobDownload download, Func<CancellationToken, Task<BlobResponse>> open, Action<long>? progress,
        CancellationToken ct)
    {
        await Task.Yield(); // the caller gets its reader before the first byte
        try
        {
            using var response = await open(ct);
            if (response.Length is { } announced && announced != blob.Size)
                throw new RegistryException(RegistryFailure.Invalid, $"blob {blob.Digest} is {blob.Size} bytes by its manifest, but the registry sends {announced}");
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long total = 0, reported = 0;
            // Unbuffered: a reader of the growing file sees each chunk as soon as it is counted.
            await using (var file = new FileStream(download.Partial, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 0, useAsync: true))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await response.Content.ReadAsync(buffer, ct)) > 0)
                {
                    total += read;
                    // A registry that sends more than the manifest says is refused before it fills the disk.
                    if (total > blob.Size)
                        throw new RegistryException(RegistryFailure.Invalid, $"blob {blob.Digest} is {blob.Size} bytes by its manifest, but the registry sent more");
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), ct);
                    download.Wrote(total);
                    if (total - reported >= 8 << 20)
                    {
                        progress?.Invoke(total - reported);
                        reported = total;
                    }
                }
            }
            progress?.Invoke(total - reported);
            var digest = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
            if (total != blob.Size || digest != blob.Digest)
                throw new RegistryException(RegistryFailure.Invalid, $"blob {blob.Digest} arrived as {total} bytes with the digest {digest}");
            download.Succeed(total);
            return total;
        }
        catch (IOException e) when (e is not EndOfStreamException)
        {
            var failure = new RegistryException(RegistryFailure.Unreachable, $"the download of blob {blob.Digest} broke off: {e.Message}", e);
            download.Fail(failure);
            throw failure;
        }
        catch (Exception e)
        {
            download.Fail(e);
            throw;
        }
    }

    /// <summary>
    /// One blob on its way into the cache: a partial file that grows as the bytes arrive, moved to the blob's path once they
    /// matched the digest, deleted otherwise. Readers follow the partial file and learn the outcome at its end.
    /// </summary>
    private sealed class BlobDownload
    {
        private readonly object _gate = new();
        private long _written;
        private bool _verified;
        private Exception? _failure;
        private Task<long>? _completion;

        public BlobDownload(string target, string partial)
        {
            Target = target;
            Partial = partial;
            // There before any reader opens it.
            using var created = new FileStream(partial, FileMode.CreateNew, FileAccess.Write);
        }

        public string Target { get; }
        public string Partial { get; }
        public Task<long> Completion => _completion!;

        public void StartOnce(Func<Task<long>> start)
        {
            lock (_gate) _completion ??= start();
        }

        public void Wrote(long total)
        {
            lock (_gate)
            {
                _written = total;
                Monitor.PulseAll(_gate);
            }
        }

        public void Succeed(long total)
        {
            lock (_gate)
            {
                File.Move(Partial, Target, overwrite: true);
                (_written, _verified) = (total, true);
                Monitor.PulseAll(_gate);
            }
        }

        public void Fail(Exception failure)
        {
            lock (_gate)
            {
                _failure ??= failure;
                Monitor.PulseAll(_gate);
            }
            if (File.Exists(Partial)) File.Delete(Partial);
        }

        public Stream OpenReader(CancellationToken ct)
        {
            lock (_gate)
            {
                if (_failure is not null) throw _failure;
                var path = _verified ? Target : Partial;
                return new Follower(this, new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 0), ct);
            }
        }

        /// <summary>Waits until bytes past <paramref name="position"/> are written or the download ended; returns how many are there.</summary>
        private long Available(long position, CancellationToken ct)
        {
            lock (_gate)
                while (true)
                {
                    if (_failure is not null) throw _failure;
                    if (_written > position || _verified) return _written;
                    ct.ThrowIfCancellationRequested();
                    Monitor.Wait(_gate, 200);
                }
        }

        private sealed class Follower(BlobDownload download, FileStream file, CancellationToken ct) : ForwardReadStream
        {
            protected override int ReadCore(Span<byte> buffer)
            {
                if (buffer.IsEmpty) return 0;
                var available = download.Available(BytesRead, ct);
                if (available <= BytesRead) return 0;
                return file.Read(buffer[..(int)Math.Min(buffer.Length, available - BytesRead)]);
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) file.Dispose();
                base.Dispose(disposing);
            }
        }
    }

    /// <summary>Keeps these entries (blob digests, manifest digests of root filesystems) from eviction until disposed.</summary>
    public IDisposable Pin(IEnumerable<string> digests)
    {
        var keys = digests.Distinct().ToList();
        lock (_lock)
            foreach (var key in keys) _pins[key] = _pins.GetValueOrDefault(key) + 1;
        return new Pinned(this, keys);
    }

    private void Unpin(IReadOnlyList<string> keys)
    {
        lock (_lock)
            foreach (var key in keys)
                if (_pins.TryGetValue(key, out var count) && --count <= 0) _pins.Remove(key);
                else if (count > 0) _pins[key] = count;
    }

    /// <summary>Total bytes held (blobs and root filesystems).</summary>
    public long SizeBytes() => Entries().Sum(e => e.Bytes);

    /// <summary>
    /// Deletes least recently used entries nobody holds until the cache fits its cap again; returns what it deleted. An
    /// image bigger than the cap stays while it runs: the cap bounds what is kept, not what runs.
    /// </summary>
    public IReadOnlyList<string> Evict()
    {
        lock (_lock)
        {
            var entries = Entries().ToList();
            var total = entries.Sum(e => e.Bytes);
            var evicted = new List<string>();
            foreach (var entry in entries.OrderBy(e => e.LastUse))
            {
                if (total <= CapBytes) break;
                if (_pins.ContainsKey(entry.Digest)) continue;
                foreach (var file in entry.Files)
                    try
                    {
                        File.Delete(file);
                    }
                    catch (IOException e)
                    {
                        _logger.LogWarning("Image cache: cannot delete {File}: {Error}", file, e.Message);
                    }
                total -= entry.Bytes;
                evicted.Add(entry.Digest);
            }
            if (evicted.Count > 0)
                _logger.LogInformation("Image cache {Directory}: evicted {Count} entries, {Size} MiB held of {Cap} MiB", Directory, evicted.Count,
                    total >> 20, CapBytes >> 20);
            return evicted;
        }
    }

    private sealed record Entry(string Digest, IReadOnlyList<string> Files, long Bytes, DateTime LastUse);

    private IEnumerable<Entry> Entries()
    {
        foreach (var blob in new DirectoryInfo(BlobsDirectory).EnumerateFiles())
            yield return new Entry("sha256:" + blob.Name, [blob.FullName], blob.Length, blob.LastWriteTimeUtc);
        foreach (var rootfs in new DirectoryInfo(RootfsDirectory).EnumerateFiles("*.erofs"))
        {
            var config = Path.ChangeExtension(rootfs.FullName, ".json");
            // Under construction (pinned by its pull): its length is not yet its size.
            if (!File.Exists(config)) continue;
            var configBytes = new FileInfo(config).Length;
            yield return new Entry("rootfs:sha256:" + Path.GetFileNameWithoutExtension(rootfs.Name), [config, rootfs.FullName], rootfs.Length + configBytes,
                rootfs.LastWriteTimeUtc);
        }
    }

    /// <summary>The pin key of a root filesystem (blobs are pinned by their digest).</summary>
    public static string RootfsKey(string manifestDigest) => "rootfs:" + manifestDigest;

    private static bool Touch(string path)
    {
        try
        {
            if (!File.Exists(path)) return false;
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow);
            return true;
        }
        catch (FileNotFoundException)
        {
            return false; // evicted just now
        }
    }

    private sealed class Pinned(ImageCache cache, IReadOnlyList<string> keys) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) cache.Unpin(keys);
        }
    }
}
