using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kraud.HostRuntime.Drivers;
using Kraud.HostRuntime.Drivers.Qemu;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Images;

/// <summary>The user an image runs as, resolved against the image's own /etc/passwd and /etc/group.</summary>
public sealed record ImageUser(uint Uid, uint Gid, string Home);

/// <summary>A root filesystem ready to boot: the erofs image file and how to run what is in it.</summary>
public sealed record PreparedRootfs(string Digest, string RootfsPath, ImageRunConfig Config, ImageUser User);

/// <summary>
/// Turns an image's layers into one read-only erofs file system. The layers are applied as they download by
/// <see cref="LayerUnpacker"/> (layer order, whiteouts and opaque directories as the OCI image spec defines them,
/// ownership, modes, links and xattrs as umoci applies them; umoci itself, from an OCI layout made of links into the cache,
/// for what it cannot reproduce), and mkfs.erofs packs the result once every layer's digest matched. The image's
/// user is resolved here, against the image's /etc/passwd and /etc/group, as Docker does when a container starts.
/// </summary>
public sealed class RootfsBuilder(QemuOptions options, ILogger logger)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Unpacks the layers as their bytes arrive (<paramref name="openLayer"/> gives layer i's stream, which ends only once
    /// its digest matched) and packs them with mkfs.erofs straight into the cache's file of the image (which
    /// <see cref="ImageCache.PrepareRootfs"/> may have created for a microVM booting meanwhile: mkfs.erofs waits for
    /// <paramref name="diskOpened"/>, the moment that microVM's QEMU holds the file open with its full size). Nothing is
    /// packed before <paramref name="downloads"/> completed, so a layer that failed its digest fails the build. A layer
    /// <see cref="LayerUnpacker"/> cannot reproduce exactly is left to umoci, from the verified blobs. The image counts as
    /// built once its run config is written beside it.
    /// </summary>
    public async Task<(PreparedRootfs Rootfs, double UnpackMs, double ErofsMs, bool Streamed)> BuildAsync(ImageCache cache, ManifestDocument manifest, byte[] configBlob,
        Func<int, Task<Stream>> openLayer, Task downloads, Task diskOpened, CancellationToken ct)
    {
        var mkfs = ProcessRunner.Which(options.MkfsErofs)
                   ?? throw new MicroVmBootException($"{options.MkfsErofs} is not installed (Debian: apt-get install erofs-utils).");
        var work = Path.Combine(cache.TempDirectory, $"build-{Guid.NewGuid():N}");
        var target = cache.RootfsPath(manifest.Digest);
        var started = Stopwatch.GetTimestamp();
        var built = false;
        var streamed = true;
        try
        {
            var rootfs = Path.Combine(work, "rootfs");
            var layers = manifest.Layers();
            var diffIds = DiffIds(configBlob);
            if (diffIds.Count != layers.Count)
                throw new MicroVmBootException($"the image's config lists {diffIds.Count} layer diff ids for {layers.Count} layers");
            try
            {
                await Task.Run(async () =>
                {
                    var unpacker = new LayerUnpacker(rootfs, Environment.UserName == "root");
                    for (var i = 0; i < layers.Count; i++)
                    {
                        await using var stream = await openLayer(i);
                        ApplyLayer(unpacker, stream, layers[i], diffIds[i]);
                    }
                }, ct);
                await downloads;
            }
            catch (Exception e) when (e is not RegistryException and not OperationCanceledException and not MicroVmBootException)
            {
                // What umoci would do with this layer is the reference: let it, from the verified blobs.
                await downloads;
                streamed = false;
                logger.LogWarning("Image {Digest}: unpacked by umoci instead ({Reason})", manifest.Digest, e.Message);
                if (Directory.Exists(rootfs)) Directory.Delete(rootfs, recursive: true);
                await UnpackWithUmociAsync(cache, manifest, configBlob, work, rootfs, ct);
            }
            var unpacked = Stopwatch.GetElapsedTime(started);

            var config = ImageRunConfig.Parse(configBlob);
            var user = ResolveUser(rootfs, config.User);
            await diskOpened.WaitAsync(ct);
            var packing = Stopwatch.GetTimestamp();
            // Uncompressed (erofs-utils compresses only when given -z): the layers' bytes are often compressed already, and
            // the guest reads the file through the host's page cache, shared by every microVM of the image.
            await Run(mkfs, ["--quiet", target, rootfs], ct);
            var packed = Stopwatch.GetElapsedTime(packing);

            var runConfig = Path.Combine(work, "run.json");
            await File.WriteAllTextAsync(runConfig, JsonSerializer.Serialize(new StoredRunConfig(manifest.Digest, config, user)), ct);
            File.Move(runConfig, cache.RunConfigPath(manifest.Digest), overwrite: true);
            built = true;
            logger.LogInformation("Image {Digest}: unpacked in {Unpack:F0} ms, erofs of {Size} MiB in {Erofs:F0} ms, built in {Total:F0} ms", manifest.Digest,
                unpacked.TotalMilliseconds, new FileInfo(target).Length >> 20, packed.TotalMilliseconds, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return (new PreparedRootfs(manifest.Digest, target, config, user), unpacked.TotalMilliseconds, packed.TotalMilliseconds, streamed);
        }
        finally
        {
            try
            {
                if (!built && File.Exists(target)) File.Delete(target);
                if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            }
            catch (IOException e)
            {
                logger.LogWarning("Image build directory {Directory} not removed: {Error}", work, e.Message);
            }
        }
    }

    /// <summary>One layer onto the root: decompressed as its media type says, its uncompressed bytes checked against the config's diff id.</summary>
    private static void ApplyLayer(LayerUnpacker unpacker, Stream blob, Descriptor layer, string diffId)
    {
        using var tar = MediaTypes.OciLayerType(layer.MediaType) switch
        {
            MediaTypes.OciLayerGzip => new HashingStream(new GZipStream(blob, CompressionMode.Decompress, leaveOpen: true)),
            MediaTypes.OciLayer => new HashingStream(blob, leaveOpen: true),
            _ => throw new MicroVmBootException($"layer {layer.Digest} is of type {layer.MediaType}, which Kraud cannot unpack"),
        };
        unpacker.Apply(tar);
        // What follows the archive's end (its zero blocks, the rest of the gzip stream) counts for the diff id too.
        tar.CopyTo(Stream.Null, 1 << 16);
        if (tar.Digest() != diffId)
            throw new MicroVmBootException($"layer {layer.Digest} unpacks to {tar.Digest()}, but the image's config says {diffId}");
    }

    private static IReadOnlyList<string> DiffIds(byte[] configBlob)
    {
        using var json = JsonDocument.Parse(configBlob);
        return json.RootElement.TryGetProperty("rootfs", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object
               && rootfs.TryGetProperty("diff_ids", out var ids) && ids.ValueKind == JsonValueKind.Array
            ? ids.EnumerateArray().Select(id => id.GetString() ?? "").ToList()
            : [];
    }

    private async Task UnpackWithUmociAsync(ImageCache cache, ManifestDocument manifest, byte[] configBlob, string work, string rootfs, CancellationToken ct)
    {
        var umoci = ProcessRunner.Which(options.Umoci) ?? throw new MicroVmBootException($"{options.Umoci} is not installed (Debian: apt-get install umoci).");
        var layout = Path.Combine(work, "layout");
        WriteLayout(cache, manifest, configBlob, layout);
        List<string> unpack = ["raw", "unpack"];
        // As root (the host runtime is), umoci keeps the image's owners; otherwise it maps everything to the caller.
        if (Environment.UserName != "root") unpack.Add("--rootless");
        unpack.AddRange(["--image", $"{layout}:kraud", rootfs]);
        await Run(umoci, unpack, ct);
    }

    /// <summary>Passes a stream's bytes through and keeps their SHA-256.</summary>
    private sealed class HashingStream(Stream inner, bool leaveOpen = false) : ForwardReadStream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public string Digest() => "sha256:" + Convert.ToHexStringLower(_hash.GetCurrentHash());

        protected override int ReadCore(Span<byte> buffer)
        {
            var read = inner.Read(buffer);
            _hash.AppendData(buffer[..read]);
            return read;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
                if (!leaveOpen) inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>A root filesystem built before (by this or an earlier run of the host runtime).</summary>
    public static PreparedRootfs? Load(ImageCache cache, string manifestDigest)
    {
        if (!cache.HasRootfs(manifestDigest)) return null;
        try
        {
            var stored = JsonSerializer.Deserialize<StoredRunConfig>(File.ReadAllText(cache.RunConfigPath(manifestDigest)));
            return stored is null || stored.Digest != manifestDigest ? null : new PreparedRootfs(manifestDigest, cache.RootfsPath(manifestDigest), stored.Config, stored.User);
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    private sealed record StoredRunConfig(string Digest, ImageRunConfig Config, ImageUser User);

    /// <summary>
    /// An OCI image layout umoci can read: the cached blobs linked in, and the manifest rewritten with OCI media types
    /// (Docker's schema 2 names the same gzip tar layers and JSON config differently).
    /// </summary>
    private static void WriteLayout(ImageCache cache, ManifestDocument manifest, byte[] configBlob, string layout)
    {
        var blobs = Path.Combine(layout, "blobs", "sha256");
        Directory.CreateDirectory(blobs);
        File.WriteAllText(Path.Combine(layout, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        var config = manifest.Config();
        File.WriteAllBytes(Path.Combine(blobs, Digests.Hex(config.Digest)), configBlob);
        var layers = new JsonArray();
        foreach (var layer in manifest.Layers())
        {
            var type = MediaTypes.OciLayerType(layer.MediaType)
                       ?? throw new MicroVmBootException($"layer {layer.Digest} is of type {layer.MediaType}, which Kraud cannot unpack");
            File.CreateSymbolicLink(Path.Combine(blobs, Digests.Hex(layer.Digest)), cache.BlobPath(layer.Digest));
            layers.Add(new JsonObject { ["mediaType"] = type, ["digest"] = layer.Digest, ["size"] = layer.Size });
        }
        var oci = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = MediaTypes.OciManifest,
            ["config"] = new JsonObject { ["mediaType"] = MediaTypes.OciConfig, ["digest"] = config.Digest, ["size"] = config.Size },
            ["layers"] = layers,
        }.ToJsonString());
        var ociDigest = Digests.Of(oci);
        File.WriteAllBytes(Path.Combine(blobs, Digests.Hex(ociDigest)), oci);
        File.WriteAllText(Path.Combine(layout, "index.json"), new JsonObject
        {
            ["schemaVersion"] = 2,
            ["manifests"] = new JsonArray(new JsonObject
            {
                ["mediaType"] = MediaTypes.OciManifest, ["digest"] = ociDigest, ["size"] = oci.Length,
                ["annotations"] = new JsonObject { ["org.opencontainers.image.ref.name"] = "kraud" },
            }),
        }.ToJsonString());
    }

    /// <summary>
    /// user, uid, user:group or uid:gid, as Docker reads an image's User: names are looked up in the image's own files; a
    /// numeric uid without an entry runs with gid 0 and HOME=/.
    /// </summary>
    internal static ImageUser ResolveUser(string rootfs, string spec)
    {
        var passwd = ReadTable(rootfs, "etc/passwd");
        var parts = spec.Split(':', 2);
        var userPart = parts[0];
        string[]? entry = null;
        uint uid, gid = 0;
        if (userPart.Length == 0)
        {
            uid = 0;
            entry = passwd.FirstOrDefault(p => p.Length >= 6 && p[2] == "0");
        }
        else if (uint.TryParse(userPart, out uid))
        {
            entry = passwd.FirstOrDefault(p => p.Length >= 6 && p[2] == userPart);
        }
        else
        {
            entry = passwd.FirstOrDefault(p => p.Length >= 6 && p[0] == userPart)
                    ?? throw new MicroVmBootException($"unable to find user {userPart}: no matching entries in the image's passwd file");
            if (!uint.TryParse(entry[2], out uid)) throw new MicroVmBootException($"the image's passwd file gives user {userPart} the uid '{entry[2]}'");
        }
        if (entry is not null && uint.TryParse(entry[3], out var primary)) gid = primary;
        if (parts.Length == 2 && parts[1].Length > 0)
        {
            if (!uint.TryParse(parts[1], out gid))
            {
                var group = ReadTable(rootfs, "etc/group").FirstOrDefault(g => g.Length >= 3 && g[0] == parts[1])
                            ?? throw new MicroVmBootException($"unable to find group {parts[1]}: no matching entries in the image's group file");
                if (!uint.TryParse(group[2], out gid)) throw new MicroVmBootException($"the image's group file gives group {parts[1]} the gid '{group[2]}'");
            }
        }
        var home = entry is { Length: >= 6 } && entry[5].Length > 0 ? entry[5] : "/";
        return new ImageUser(uid, gid, home);
    }

    /// <summary>A colon-separated file of the image; a symbolic link is not followed (it would point into the host).</summary>
    private static IReadOnlyList<string[]> ReadTable(string rootfs, string relative)
    {
        var path = Path.Combine(rootfs, relative);
        var info = new FileInfo(path);
        if (!info.Exists || info.LinkTarget is not null || new DirectoryInfo(Path.GetDirectoryName(path)!).LinkTarget is not null) return [];
        return File.ReadAllLines(path).Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split(':')).ToList();
    }

    private async Task Run(string tool, IReadOnlyList<string> args, CancellationToken ct)
    {
        var result = await ProcessRunner.RunAsync(tool, args, ToolTimeout, ct);
        if (result.ExitCode != 0)
            throw new MicroVmBootException($"{Path.GetFileName(tool)} failed ({result.ExitCode}): {result.Error.Trim()} {result.Output.Trim()}".Trim());
    }
}
