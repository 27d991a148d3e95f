using System.Formats.Tar;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Images;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.HostRuntime;

/// <summary>
/// Kraud's own unpack of layer streams against umoci's (the reference the issue names): the same layers, unpacked by both,
/// give the same tree, entry by entry (type, mode, owner, size, bytes, time, link target, device, hard-link group, xattrs).
/// </summary>
public sealed class LayerUnpackerSpecs : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kraud-unpack-").FullName;
    private static readonly DateTimeOffset Then = new(2021, 3, 4, 5, 6, 7, TimeSpan.Zero);

    [Fact]
    public async Task layers_unpack_as_umoci_unpacks_them_with_whiteouts_opaque_directories_links_devices_owners_modes_xattrs_and_times()
    {
        TestRegistry.Require("umoci", "umoci");
        var lower = Layer(w =>
        {
            Dir(w, "./", 0b111_101_101);
            Dir(w, "etc/", 0b111_101_101, uid: 0);
            File(w, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0b110_100_100);
            Dir(w, "app/", 0b111_101_000, uid: 1000, gid: 1000);
            File(w, "app/old.txt", "lower", 0b110_100_100, uid: 1000, gid: 1000);
            File(w, "app/keep.txt", "kept", 0b110_000_000, uid: 1000, gid: 50);
            File(w, "app/suid", "#!/bin/sh\n", 0b100_111_101_101, uid: 0, gid: 0);
            File(w, "app/xattr.txt", "with xattrs", 0b110_100_100, xattrs: new() { ["user.kraud"] = "value", ["trusted.kraud"] = "t" });
            Link(w, TarEntryType.HardLink, "app/hard", "app/keep.txt");
            Link(w, TarEntryType.SymbolicLink, "app/rel", "keep.txt");
            Link(w, TarEntryType.SymbolicLink, "abs", "/app");
            Link(w, TarEntryType.SymbolicLink, "escape", "../../../../tmp");
            Dir(w, "opaque/", 0b111_111_111 | 0b1_000_000_000);
            File(w, "opaque/lower.txt", "gone after the opaque whiteout", 0b110_100_100);
            Dir(w, "opaque/sub/", 0b111_101_101);
            File(w, "opaque/sub/deep.txt", "gone too", 0b110_100_100);
            Dir(w, "gone/", 0b111_101_101);
            File(w, "gone/a.txt", "a", 0b110_100_100);
            File(w, "becomes-dir", "file", 0b110_100_100);
            Dir(w, "becomes-file/", 0b111_101_101);
            File(w, "becomes-file/x", "x", 0b110_100_100);
            Device(w, TarEntryType.CharacterDevice, "dev-null", 1, 3);
            Device(w, TarEntryType.BlockDevice, "dev-block", 7, 0);
            Device(w, TarEntryType.Fifo, "fifo", 0, 0);
        });
        var upper = Layer(w =>
        {
            File(w, "app/.wh.old.txt", "", 0);
            File(w, "opaque/.wh..wh..opq", "", 0);
            File(w, "opaque/new.txt", "this layer's", 0b110_100_100);
            File(w, ".wh.gone", "", 0);
            File(w, "same.txt", "written and whited out in one layer: stays", 0b110_100_100);
            File(w, ".wh.same.txt", "", 0);
            Dir(w, "becomes-dir/", 0b111_000_000, uid: 7);
            File(w, "becomes-file", "now a file", 0b110_110_110);
            File(w, "abs/through-link.txt", "written through /abs, inside the root", 0b110_100_100);
            File(w, "escape/evil.txt", "must stay inside the root", 0b110_100_100);
            Link(w, TarEntryType.HardLink, "app/hard-to-lower", "app/suid");
            File(w, "app/keep.txt", "replaced: the lower hard link keeps the old inode", 0b110_100_100);
        });
        var third = Layer(w => File(w, "etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", 0b110_100_100));
        byte[][] layers = [lower, upper, third];

        var byUmoci = Path.Combine(_dir, "umoci");
        var layout = WriteLayout(layers);
        var umoci = await ProcessRunner.RunAsync(ProcessRunner.Which("umoci")!, ["raw", "unpack", "--image", $"{layout}:t", byUmoci], TimeSpan.FromMinutes(2), CancellationToken.None);
        Assert.True(umoci.ExitCode == 0, umoci.Error);
        var byKraud = Path.Combine(_dir, "kraud");
        var unpacker = new LayerUnpacker(byKraud, asRoot: true);
        foreach (var layer in layers)
        {
            using var gzip = new GZipStream(new MemoryStream(layer), CompressionMode.Decompress);
            unpacker.Apply(gzip);
        }

        var expected = await SnapshotAsync(byUmoci);
        var actual = await SnapshotAsync(byKraud);
        Assert.Equal(expected, actual);
        // What the layers meant, to be sure the comparison saw it (and not two equally wrong trees).
        Assert.DoesNotContain(expected, e => e.StartsWith("app/old.txt|", StringComparison.Ordinal) || e.StartsWith("gone|", StringComparison.Ordinal)
                                            || e.StartsWith("opaque/lower.txt|", StringComparison.Ordinal) || e.StartsWith("opaque/sub|", StringComparison.Ordinal));
        Assert.Contains(expected, e => e.StartsWith("opaque/new.txt|", StringComparison.Ordinal));
        Assert.Contains(expected, e => e.StartsWith("same.txt|", StringComparison.Ordinal));
        Assert.Contains(expected, e => e.StartsWith("tmp/evil.txt|f|", StringComparison.Ordinal));
        Assert.Contains(expected, e => e.StartsWith("app/through-link.txt|f|", StringComparison.Ordinal));
        Assert.Contains(expected, e => e.StartsWith("app/suid|f|4755|", StringComparison.Ordinal));
        Assert.Contains(expected, e => e.StartsWith("dev-null|c|", StringComparison.Ordinal) && e.Contains("|1:3|"));
        Assert.Contains(expected, e => e.StartsWith("app/xattr.txt|", StringComparison.Ordinal) && e.Contains("user.kraud=value"));
        Assert.False(System.IO.File.Exists("/tmp/evil.txt"), "a layer wrote outside its root");
    }

    [Fact]
    public void an_entry_that_is_not_utf8_is_refused_as_unsupported_so_umoci_unpacks_that_image()
    {
        var layer = Layer(w => w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "caps",
            new Dictionary<string, string> { ["SCHILY.xattr.security.capability"] = "\uFFFD\u0001" })
        { DataStream = new MemoryStream([1]) }));
        var unpacker = new LayerUnpacker(Path.Combine(_dir, "kraud"), asRoot: true);
        using var gzip = new GZipStream(new MemoryStream(layer), CompressionMode.Decompress);
        Assert.Throws<UnsupportedLayerException>(() => unpacker.Apply(gzip));
    }

    private static byte[] Layer(Action<TarWriter> write)
    {
        var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        using (var writer = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true))
            write(writer);
        return compressed.ToArray();
    }

    private static void Dir(TarWriter w, string name, int mode, int uid = 0, int gid = 0) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name) { Mode = (UnixFileMode)mode, Uid = uid, Gid = gid, ModificationTime = Then });

    private static void File(TarWriter w, string name, string text, int mode, int uid = 0, int gid = 0, Dictionary<string, string>? xattrs = null)
    {
        var attributes = new Dictionary<string, string>();
        foreach (var (key, value) in xattrs ?? []) attributes["SCHILY.xattr." + key] = value;
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name, attributes)
        {
            Mode = (UnixFileMode)mode, Uid = uid, Gid = gid, ModificationTime = Then.AddSeconds(name.Length), DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)),
        });
    }

    private static void Link(TarWriter w, TarEntryType type, string name, string target) =>
        w.WriteEntry(new PaxTarEntry(type, name) { LinkName = target, Mode = (UnixFileMode)0b111_111_111, ModificationTime = Then });

    private static void Device(TarWriter w, TarEntryType type, string name, int major, int minor)
    {
        var entry = new PaxTarEntry(type, name) { Mode = (UnixFileMode)0b110_110_110, ModificationTime = Then };
        if (type != TarEntryType.Fifo) (entry.DeviceMajor, entry.DeviceMinor) = (major, minor);
        w.WriteEntry(entry);
    }

    /// <summary>An OCI layout of these gzip layers, for umoci.</summary>
    private string WriteLayout(byte[][] layers)
    {
        var layout = Path.Combine(_dir, "layout");
        var blobs = Path.Combine(layout, "blobs", "sha256");
        Directory.CreateDirectory(blobs);
        string Put(byte[] bytes)
        {
            var digest = Digests.Of(bytes);
            System.IO.File.WriteAllBytes(Path.Combine(blobs, digest[7..]), bytes);
            return digest;
        }
        var diffIds = new JsonArray();
        var descriptors = new JsonArray();
        foreach (var layer in layers)
        {
            using var gzip = new GZipStream(new MemoryStream(layer), CompressionMode.Decompress);
            var tar = new MemoryStream();
            gzip.CopyTo(tar);
            diffIds.Add(Digests.Of(tar.ToArray()));
            descriptors.Add(new JsonObject { ["mediaType"] = MediaTypes.OciLayerGzip, ["digest"] = Put(layer), ["size"] = layer.Length });
        }
        var config = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["architecture"] = "amd64", ["os"] = "linux", ["config"] = new JsonObject(), ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = diffIds },
        }.ToJsonString());
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2, ["mediaType"] = MediaTypes.OciManifest,
            ["config"] = new JsonObject { ["mediaType"] = MediaTypes.OciConfig, ["digest"] = Put(config), ["size"] = config.Length }, ["layers"] = descriptors,
        }.ToJsonString());
        System.IO.File.WriteAllText(Path.Combine(layout, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        System.IO.File.WriteAllText(Path.Combine(layout, "index.json"), new JsonObject
        {
            ["schemaVersion"] = 2,
            ["manifests"] = new JsonArray(new JsonObject
            {
                ["mediaType"] = MediaTypes.OciManifest, ["digest"] = Put(manifest), ["size"] = manifest.Length,
                ["annotations"] = new JsonObject { ["org.opencontainers.image.ref.name"] = "t" },
            }),
        }.ToJsonString());
        return layout;
    }

    /// <summary>
    /// Every entry under the root (the root itself as "."): path, type, mode with set-id bits, owner, size, mtime to the
    /// nanosecond, link target, device numbers, the first path of its hard-link group, content bytes, xattrs.
    /// </summary>
    private static async Task<List<string>> SnapshotAsync(string root)
    {
        var found = await ProcessRunner.RunAsync(ProcessRunner.Which("find")!, [root, "-printf", @"%P|%y|%m|%U|%G|%s|%T@|%l|%i\n"], TimeSpan.FromMinutes(1), CancellationToken.None);
        Assert.True(found.ExitCode == 0, found.Error);
        var lines = found.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToList();
        var firstOfInode = new Dictionary<string, string>();
        var entries = new List<string>();
        foreach (var line in lines)
        {
            var f = line.Split('|');
            var path = f[0].Length == 0 ? "." : f[0];
            var full = Path.Combine(root, f[0]);
            var group = firstOfInode.TryAdd(f[8], path) ? path : firstOfInode[f[8]];
            var device = "";
            if (f[1] is "c" or "b")
            {
                var stat = await ProcessRunner.RunAsync(ProcessRunner.Which("stat")!, ["-c", "%Hr:%Lr", full], TimeSpan.FromSeconds(10), CancellationToken.None);
                device = stat.Output.Trim();
            }
            var content = f[1] == "f" ? Digests.Of(System.IO.File.ReadAllBytes(full)) : "";
            // A directory's size is the file system's business, not the layer's.
            var size = f[1] == "d" ? "" : f[5];
            // A directory no entry named (made for an entry below it) has the time it was made: now, in either tree.
            var time = decimal.Parse(f[6], System.Globalization.CultureInfo.InvariantCulture) > Then.AddYears(3).ToUnixTimeSeconds() ? "now" : f[6];
            entries.Add($"{path}|{f[1]}|{f[2]}|{f[3]}:{f[4]}|{size}|{time}|{f[7]}|{device}|{group}|{content}|{Xattrs(full)}");
        }
        return entries;
    }

    private static string Xattrs(string path)
    {
        var names = new byte[4096];
        var size = Llistxattr(path, names, (nuint)names.Length);
        if (size <= 0) return "";
        var result = new List<string>();
        foreach (var name in Encoding.UTF8.GetString(names, 0, (int)size).Split('\0', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal))
        {
            var value = new byte[4096];
            var length = Lgetxattr(path, name, value, (nuint)value.Length);
            result.Add($"{name}={(length < 0 ? "?" : Encoding.UTF8.GetString(value, 0, (int)length))}");
        }
        return string.Join(',', result);
    }

    [DllImport("libc", EntryPoint = "llistxattr", SetLastError = true)]
    private static extern nint Llistxattr(string path, byte[] list, nuint size);

    [DllImport("libc", EntryPoint = "lgetxattr", SetLastError = true)]
    private static extern nint Lgetxattr(string path, string name, byte[] value, nuint size);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
