using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Images;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kraud.Tests.HostRuntime;

/// <summary>A host's pull of an image from a real registry, unpacked while its layers download; no microVM.</summary>
public sealed class ImagePullSpecs : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kraud-pull-").FullName;
    private TestRegistry _registry = null!;

    public async Task InitializeAsync() => _registry = await TestRegistry.StartAsync();

    [Fact]
    public async Task a_layer_whose_bytes_miss_their_digest_fails_the_pull_after_its_unpack_began_and_leaves_nothing_in_the_cache()
    {
        using var image = await TestImage.BusyboxAsync();
        await image.AddRandomAsync("/payload.bin", 24 << 20);
        await image.ConfigAsync(entrypoint: ["/bin/true"]);
        var digest = await image.PushAsync(_registry, "test/streamed:1");
        using var client = new DistributionClient(_registry.Options());
        var payload = (await client.GetManifestAsync(_registry.HostPort, "test/streamed", digest, null, CancellationToken.None)).Layers()[^1];
        var oci = new OciImage(_registry.HostPort, "test/streamed", digest);

        // Intact, the image is pulled and built, the payload unpacked from the stream.
        var (good, goodPuller) = Puller("good");
        ImageBuildTimes? times = null;
        goodPuller.Built += t => times = t;
        using (var pulled = await goodPuller.PullAsync(oci, null, CancellationToken.None))
        {
            Assert.True(good.HasRootfs(digest));
            Assert.Equal(payload.Size + (await client.GetManifestAsync(_registry.HostPort, "test/streamed", digest, null, CancellationToken.None)).Layers()[0].Size,
                pulled.DownloadedBytes);
        }
        Assert.True(times?.Streamed, "Kraud's unpack, not umoci's: " + string.Join("; ", _warnings.Lines));

        // With bytes changed in the middle of the payload's blob, the unpack reads the first half before the digest can be
        // known: the pull still fails on the digest, and the host keeps no byte of it.
        _registry.CorruptBlob(payload.Digest);
        var (cache, puller) = Puller("bad");
        var failure = await Assert.ThrowsAsync<RegistryException>(() => puller.PullAsync(oci, null, CancellationToken.None));
        Assert.Equal(RegistryFailure.Invalid, failure.Failure);
        Assert.Contains(payload.Digest, failure.Message);
        Assert.False(cache.HasBlob(payload.Digest));
        Assert.False(cache.HasRootfs(digest));
        Assert.False(File.Exists(cache.RootfsPath(digest)));
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache.TempDirectory));
    }

    private readonly Warnings _warnings = new();

    private (ImageCache Cache, ImagePuller Puller) Puller(string name)
    {
        var cache = new ImageCache(Path.Combine(_dir, name), 1L << 30);
        return (cache, new ImagePuller(new DistributionClient(_registry.Options()), cache, new RootfsBuilder(new QemuOptions(), _warnings), NullLogger.Instance));
    }

    /// <summary>The build's warnings (why umoci unpacked instead), for the failure message.</summary>
    private sealed class Warnings : ILogger
    {
        public List<string> Lines { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) lock (Lines) Lines.Add(formatter(state, exception));
        }
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
