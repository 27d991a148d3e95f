using System.Collections.Concurrent;
using System.Diagnostics;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Images;

/// <summary>An image ready for a microVM, held in the cache until <see cref="Dispose"/> (when the microVM is gone).</summary>
public sealed class PulledImage(PreparedRootfs rootfs, long downloadedBytes, IDisposable pin) : IDisposable
{
    public PreparedRootfs Rootfs => rootfs;

    /// <summary>Bytes this pull downloaded; 0 when the cache had everything.</summary>
    public long DownloadedBytes => downloadedBytes;

    public void Dispose() => pin.Dispose();
}

/// <summary>
/// Where a cold pull's time went: the download with its digest checks (from the pull's start until every layer matched),
/// the unpack (from the pull's start until the last layer is applied: beside the download when <paramref name="Streamed"/>,
/// else umoci's after it) and mkfs.erofs (its own time, after both).
/// </summary>
public sealed record ImageBuildTimes(string Digest, double FetchMs, double UnpackMs, double ErofsMs, bool Streamed);

/// <summary>
/// A pull under way for one microVM. <see cref="EarlyRootfs"/> is set when this microVM started the image's build: it may
/// boot on that file right away and must call <see cref="DiskOpened"/> once its QEMU holds the file open (or will never
/// open it), since mkfs.erofs waits for that; the image is usable once <see cref="Ready"/> completes.
/// </summary>
public sealed class PendingImage(string? earlyRootfs, Task<PulledImage> ready, TaskCompletionSource? opened)
{
    public string? EarlyRootfs => earlyRootfs;

    public Task<PulledImage> Ready => ready;

    public void DiskOpened() => opened?.TrySetResult();
}

/// <summary>
/// Pulls what a microVM runs onto its host: the manifest by its digest (never a tag: the control plane pinned it), the
/// config and the layers into the host's <see cref="ImageCache"/> (every digest checked as the bytes stream in, up to
/// three layers at once), then the root filesystem built once per digest. The microVM whose pull starts a build may boot
/// meanwhile (<see cref="Begin"/>); one that joins a build under way waits for it. A second microVM of the image on this
/// host downloads and builds nothing. Progress goes to the log with bytes.
/// </summary>
public sealed class ImagePuller(DistributionClient registry, ImageCache cache, RootfsBuilder builder, ILogger logger)
{
    private const int ParallelLayers = 3;
    private readonly ConcurrentDictionary<string, Lazy<Task<(PreparedRootfs Rootfs, long Downloaded)>>> _builds = new();

    public ImageCache Cache => cache;

    /// <summary>Raised when a build completes, with where its time went.</summary>
    public event Action<ImageBuildTimes>? Built;

    public Task<PulledImage> PullAsync(OciImage image, RegistryAuth? auth, CancellationToken ct)
    {
        var pending = Begin(image, auth, ct);
        pending.DiskOpened();
        return pending.Ready;
    }

    public PendingImage Begin(OciImage image, RegistryAuth? auth, CancellationToken ct)
    {
        // Held from the start: what this pull needs must not be evicted by another one under its feet.
        var rootfsPin = cache.Pin([ImageCache.RootfsKey(image.Digest)]);
        try
        {
            if (RootfsBuilder.Load(cache, image.Digest) is { } cached) return new PendingImage(null, Task.FromResult(new PulledImage(cached, 0, rootfsPin)), null);
            var opened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var mine = new Lazy<Task<(PreparedRootfs, long)>>(() => BuildAsync(image, auth, opened.Task, ct));
            var build = _builds.GetOrAdd(image.Digest, mine);
            // Created before the build can reach mkfs.erofs, which waits for this microVM's QEMU to have opened it.
            var early = build == mine ? cache.PrepareRootfs(image.Digest) : null;
            return new PendingImage(early, CompleteAsync(image, build, build == mine, rootfsPin), early is null ? null : opened);
        }
        catch
        {
            rootfsPin.Dispose();
            throw;
        }
    }

    private async Task<PulledImage> CompleteAsync(OciImage image, Lazy<Task<(PreparedRootfs, long)>> build, bool mine, IDisposable rootfsPin)
    {
        try
        {
            (PreparedRootfs Rootfs, long Downloaded) built;
            try
            {
                built = await build.Value;
            }
            finally
            {
                _builds.TryRemove(new KeyValuePair<string, Lazy<Task<(PreparedRootfs, long)>>>(image.Digest, build));
            }
            cache.Evict();
            // A microVM that waited for another one's pull downloaded nothing itself.
            return new PulledImage(built.Rootfs, mine ? built.Downloaded : 0, rootfsPin);
        }
        catch
        {
            if (mine) cache.DiscardPendingRootfs(image.Digest);
            rootfsPin.Dispose();
            throw;
        }
    }

    private async Task<(PreparedRootfs, long)> BuildAsync(OciImage image, RegistryAuth? auth, Task diskOpened, CancellationToken ct)
    {
        var name = $"{image.Registry}/{image.Repository}@{image.Digest}";
        var started = Stopwatch.GetTimestamp();
        var manifest = await registry.GetManifestAsync(image.Registry, image.Repository, image.Digest, auth, ct);
        if (manifest.IsIndex) throw new RegistryException(RegistryFailure.Invalid, $"{name} is an index, not the platform manifest the control plane resolves to");
        var config = manifest.Config();
        var layers = manifest.Layers();
        using var blobPin = cache.Pin([config.Digest, .. layers.Select(l => l.Digest)]);
        long total = layers.Sum(l => l.Size), downloaded = 0;
        var configBytes = await registry.GetBlobBytesAsync(image.Registry, image.Repository, config, auth, ct);
        logger.LogInformation("Pulling {Image}: {Layers} layers, {Size:F1} MiB", name, layers.Count, total / 1048576.0);
        // Every layer's download starts as soon as one of the three slots is free; the unpack reads layer i's bytes as they
        // arrive (from the cache when it has them), in order, while later layers download beside it.
        // Disposed after the finally below has awaited every download, so no Release comes after it.
        using var gate = new SemaphoreSlim(ParallelLayers);
        var fetched = 0L;
        var opened = layers.Select(async layer =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var (content, done) = cache.OpenBlob(layer, token => registry.OpenBlobAsync(image.Registry, image.Repository, layer.Digest, auth, token),
                    chunk =>
                    {
                        var now = Interlocked.Add(ref downloaded, chunk);
                        logger.LogInformation("Pulling {Image}: {Done:F1} of {Size:F1} MiB", name, now / 1048576.0, total / 1048576.0);
                    }, ct);
                _ = done.ContinueWith(_ => gate.Release(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                return (Content: content, Done: done);
            }
            catch
            {
                gate.Release();
                throw;
            }
        }).ToList();
        var downloads = DownloadsAsync();
        try
        {
            var building = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var (rootfs, unpackMs, erofsMs, streamed) = await builder.BuildAsync(cache, manifest, configBytes, async i => (await opened[i]).Content, downloads, diskOpened, ct);
            var fetchMs = Stopwatch.GetElapsedTime(started, Interlocked.Read(ref fetched)).TotalMilliseconds;
            logger.LogInformation("Pulled {Image}: {Downloaded:F1} MiB downloaded, {Cached:F1} MiB from the cache, in {Ms:F0} ms", name, downloaded / 1048576.0,
                (total - downloaded) / 1048576.0, fetchMs);
            Built?.Invoke(new ImageBuildTimes(image.Digest, fetchMs, building + unpackMs, erofsMs, streamed));
            return (rootfs, downloaded);
        }
        catch (MicroVmBootException e)
        {
            throw new MicroVmBootException($"image {name}: {e.Message}");
        }
        finally
        {
            // The streams of layers a failed unpack never reached; and no download outlives its pull unobserved.
            foreach (var layer in opened.Where(o => o.IsCompletedSuccessfully)) await layer.Result.Content.DisposeAsync();
            await Task.WhenAll(opened.Select(o => o.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default)));
            await downloads.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }

        async Task DownloadsAsync()
        {
            try
            {
                await Task.WhenAll(opened.Select(async o => await (await o).Done));
            }
            finally
            {
                Interlocked.Exchange(ref fetched, Stopwatch.GetTimestamp());
            }
        }
    }
}
