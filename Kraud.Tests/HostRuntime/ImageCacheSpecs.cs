using Kraud.HostRuntime.Images;

namespace Kraud.Tests.HostRuntime;

/// <summary>The host's image cache and the root filesystems built in place in it.</summary>
public sealed class ImageCacheSpecs : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"kraud-image-cache-{Guid.NewGuid():N}");

    [Fact]
    public void a_root_filesystem_being_built_is_neither_loaded_nor_counted_nor_evicted_and_one_a_broken_off_build_left_is_deleted_at_start()
    {
        var cache = new ImageCache(_directory, capBytes: 1 << 20);
        var digest = "sha256:" + new string('a', 64);

        var path = cache.PrepareRootfs(digest);

        Assert.Equal(cache.RootfsPath(digest), path);
        Assert.Equal(ImageCache.PendingRootfsBytes, new FileInfo(path).Length);
        Assert.False(cache.HasRootfs(digest));
        Assert.Null(RootfsBuilder.Load(cache, digest));
        Assert.Equal(0, cache.SizeBytes());
        Assert.Empty(cache.Evict());
        Assert.True(File.Exists(path));

        _ = new ImageCache(_directory, capBytes: 1 << 20);

        Assert.False(File.Exists(path));
    }

    [Fact]
    public void a_build_that_failed_takes_its_file_away_but_never_a_built_root_filesystem()
    {
        var cache = new ImageCache(_directory, capBytes: 1L << 30);
        var failed = "sha256:" + new string('b', 64);
        var built = "sha256:" + new string('c', 64);
        cache.PrepareRootfs(failed);
        File.WriteAllBytes(cache.RootfsPath(built), new byte[4096]);
        File.WriteAllText(cache.RunConfigPath(built), "{}");

        cache.DiscardPendingRootfs(failed);
        cache.DiscardPendingRootfs(built);

        Assert.False(File.Exists(cache.RootfsPath(failed)));
        Assert.True(File.Exists(cache.RootfsPath(built)));
        Assert.Equal(4096 + 2, cache.SizeBytes());
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
    }
}
