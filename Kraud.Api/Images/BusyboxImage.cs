using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Kraud.HostRuntime.Images;

namespace Kraud.Api.Images;

/// <summary>
/// A real, small OCI image built from this machine's busybox-static: one layer with /bin/busybox and a link per applet,
/// /etc/passwd and /etc/group with root and nobody, /tmp; Cmd ["sh"]. Built the same way every time (fixed times, owners
/// and order), so its digest only changes with busybox. It fills the registry Kraud starts for itself, which stands in for
/// Docker Hub where there is no internet.
/// </summary>
public sealed record BusyboxImage(byte[] Layer, byte[] Config, byte[] Manifest, string Version)
{
    private static readonly DateTimeOffset Epoch = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public string ManifestDigest => Digests.Of(Manifest);

    public static async Task<BusyboxImage> BuildAsync(string busybox = "/bin/busybox", CancellationToken ct = default)
    {
        var binary = await File.ReadAllBytesAsync(busybox, ct);
        if (Kraud.HostRuntime.Drivers.Qemu.GuestImageBuilder.IsDynamicallyLinked(binary))
            throw new InvalidOperationException($"{busybox} is dynamically linked; the image needs busybox-static.");
        var list = await Kraud.HostRuntime.Drivers.Qemu.ProcessRunner.RunAsync(busybox, ["--list"], TimeSpan.FromSeconds(10), ct);
        var version = await Kraud.HostRuntime.Drivers.Qemu.ProcessRunner.RunAsync(busybox, ["--help"], TimeSpan.FromSeconds(10), ct);
        var applets = list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(a => a != "busybox" && a.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '['))
            .Order(StringComparer.Ordinal).ToList();

        var tar = new MemoryStream();
        await using (var writer = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Directory(string name, UnixFileMode mode) => writer.WriteEntry(Entry(TarEntryType.Directory, name, mode));
            void File(string name, byte[] data, UnixFileMode mode)
            {
                var entry = Entry(TarEntryType.RegularFile, name, mode);
                entry.DataStream = new MemoryStream(data);
                writer.WriteEntry(entry);
            }
            const UnixFileMode dir = (UnixFileMode)0b111_101_101, exe = dir, text = (UnixFileMode)0b110_100_100;
            Directory("bin/", dir);
            File("bin/busybox", binary, exe);
            foreach (var applet in applets)
                writer.WriteEntry(new UstarTarEntry(TarEntryType.SymbolicLink, "bin/" + applet) { LinkName = "busybox", ModificationTime = Epoch, Mode = (UnixFileMode)0b111_111_111 });
            Directory("etc/", dir);
            File("etc/passwd", Encoding.ASCII.GetBytes("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), text);
            File("etc/group", Encoding.ASCII.GetBytes("root:x:0:\nnogroup:x:65534:\n"), text);
            Directory("root/", (UnixFileMode)0b111_000_000);
            Directory("tmp/", (UnixFileMode)0b1_111_111_111);
        }
        var uncompressed = tar.ToArray();
        var gzipped = new MemoryStream();
        await using (var gzip = new GZipStream(gzipped, CompressionLevel.Optimal, leaveOpen: true)) await gzip.WriteAsync(uncompressed, ct);
        var layer = gzipped.ToArray();
        var versionText = version.Output.Split('\n').FirstOrDefault(l => l.StartsWith("BusyBox v", StringComparison.Ordinal))?.Split(' ')[1].TrimStart('v') ?? "unknown";

        var config = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["created"] = Epoch.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["config"] = new JsonObject
            {
                ["Env"] = new JsonArray("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                ["Cmd"] = new JsonArray("sh"),
                ["Labels"] = new JsonObject { ["org.opencontainers.image.title"] = "busybox", ["org.opencontainers.image.version"] = versionText },
            },
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray(Digests.Of(uncompressed)) },
            ["history"] = new JsonArray(new JsonObject { ["created_by"] = "Kraud: busybox-static of the host" }),
        }.ToJsonString());
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = MediaTypes.OciManifest,
            ["config"] = new JsonObject { ["mediaType"] = MediaTypes.OciConfig, ["digest"] = Digests.Of(config), ["size"] = config.Length },
            ["layers"] = new JsonArray(new JsonObject { ["mediaType"] = MediaTypes.OciLayerGzip, ["digest"] = Digests.Of(layer), ["size"] = layer.Length }),
        }.ToJsonString());
        return new BusyboxImage(layer, config, manifest, versionText);
    }

    private static UstarTarEntry Entry(TarEntryType type, string name, UnixFileMode mode) =>
        new(type, name) { Mode = mode, ModificationTime = Epoch, Uid = 0, Gid = 0 };

    /// <summary>Pushes this image to <paramref name="registry"/> under each repository:tag given.</summary>
    public async Task PushAsync(DistributionClient client, string registry, IEnumerable<string> names, CancellationToken ct)
    {
        foreach (var name in names)
        {
            var colon = name.LastIndexOf(':');
            var (repository, tag) = colon > 0 && !name[colon..].Contains('/') ? (name[..colon], name[(colon + 1)..]) : (name, "latest");
            await client.PushBlobAsync(registry, repository, Layer, null, ct);
            await client.PushBlobAsync(registry, repository, Config, null, ct);
            await client.PushManifestAsync(registry, repository, tag, MediaTypes.OciManifest, Manifest, null, ct);
        }
    }
}
