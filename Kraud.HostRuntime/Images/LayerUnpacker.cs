using System.Formats.Tar;
using System.Runtime.InteropServices;
using System.Text;

namespace Kraud.HostRuntime.Images;

/// <summary>A layer holds something <see cref="LayerUnpacker"/> cannot reproduce exactly; umoci unpacks that image instead.</summary>
public sealed class UnsupportedLayerException(string message) : Exception(message);

/// <summary>
/// Applies OCI image layers (uncompressed tar streams, lowest first) to a directory as they stream in, the way umoci's
/// unpack does (its oci/layer/tar_extract.go is the reference): whiteouts and opaque directories remove only what lower
/// layers put there, an entry replaces what was at its path unless both are directories, hard links and parent directories
/// are resolved inside the root (symbolic links on the way are followed as if the root were /, never out of it), owners,
/// modes (set-id bits after the owner), xattrs and times are restored, and a directory keeps its times while entries
/// change its contents. Whatever it cannot reproduce byte for byte (xattr values or names that are not
/// UTF-8, since .NET's tar reader decodes them; sparse or unknown entry types) raises <see cref="UnsupportedLayerException"/>.
/// </summary>
public sealed class LayerUnpacker(string root, bool asRoot)
{
    private const string WhiteoutPrefix = ".wh.", OpaqueWhiteout = ".wh..wh..opq";
    private const string XattrPrefix = "SCHILY.xattr.";
    private const int MaxSymlinks = 255;
    private readonly string _root = Path.GetFullPath(root).TrimEnd('/');

    // Per layer: the paths it created (and their ancestors), which its own whiteouts must leave alone.
    private readonly HashSet<string> _upper = new(StringComparer.Ordinal);

    /// <summary>Applies one layer; returns once its tar stream ended (the caller drains what follows the archive's end).</summary>
    public void Apply(Stream tar)
    {
        _upper.Clear();
        Directory.CreateDirectory(_root);
        var counted = new CountingStream(tar);
        using var reader = new TarReader(counted, leaveOpen: true);
        while (NextEntry(reader, counted) is { } entry) Unpack(entry);
    }

    /// <summary>
    /// The next entry, or null at the archive's end: its zero blocks, or (as Go's archive/tar, which umoci uses, reads it)
    /// the stream ending right where a header would start; some layer writers leave the zero blocks out.
    /// </summary>
    private static TarEntry? NextEntry(TarReader reader, CountingStream counted)
    {
        try
        {
            return reader.GetNextEntry(copyData: false);
        }
        catch (EndOfStreamException) when (counted.Ended && counted.Count % 512 == 0)
        {
            return null;
        }
    }

    private void Unpack(TarEntry entry)
    {
        if (entry.EntryType is TarEntryType.GlobalExtendedAttributes) return;
        var name = Clean(entry.Name);
        if (name.Contains('\uFFFD') || (entry.EntryType is TarEntryType.HardLink or TarEntryType.SymbolicLink && entry.LinkName.Contains('\uFFFD')))
            throw new UnsupportedLayerException($"the name of '{name}' is not UTF-8");
        string dir, file;
        if (name.Length == 0)
        {
            // umoci refuses an entry for the root that is not a directory: it could turn the root into a symlink.
            if (entry.EntryType != TarEntryType.Directory) throw new InvalidDataException("a layer's entry for its root is not a directory");
            (dir, file) = (_root, "");
        }
        else
        {
            var slash = name.LastIndexOf('/');
            dir = SecureJoin(slash < 0 ? "" : name[..slash]);
            file = name[(slash + 1)..];
        }
        var path = file.Length == 0 ? dir : dir + "/" + file;
        // As umoci: the entry's directory keeps the times it had before the entry changed its contents.
        var parent = default(StatX);
        var parentKept = path != dir && Lstat(dir, out parent);
        Create(entry, name, dir, file, path);
        if (parentKept) SetTimes(dir, (parent.AtimeSec, parent.AtimeNsec), (parent.MtimeSec, parent.MtimeNsec));
    }

    private void Create(TarEntry entry, string name, string dir, string file, string path)
    {
        if (file.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
        {
            Whiteout(dir, file);
            return;
        }
        var existing = Lstat(path);
        Directory.CreateDirectory(dir);
        if (existing is { } mode && (!IsDirectory(mode) || entry.EntryType != TarEntryType.Directory)) RemoveAll(path, mode);

        switch (entry.EntryType)
        {
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                using (var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0))
                {
                    if (entry.DataStream is { } data) data.CopyTo(output, 1 << 20);
                    if (output.Length != entry.Length) throw new InvalidDataException($"'{name}' is {entry.Length} bytes by its header but has {output.Length}");
                }
                break;
            case TarEntryType.Directory:
                Directory.CreateDirectory(path);
                break;
            case TarEntryType.SymbolicLink:
                Check(Symlink(entry.LinkName, path), "symlink", path);
                break;
            case TarEntryType.HardLink:
                var target = Clean(entry.LinkName);
                var targetSlash = target.LastIndexOf('/');
                var targetPath = SecureJoin(targetSlash < 0 ? "" : target[..targetSlash]) + "/" + target[(targetSlash + 1)..];
                Check(Link(targetPath, path), "link", path);
                break;
            case TarEntryType.CharacterDevice or TarEntryType.BlockDevice when !asRoot:
                // As umoci does rootless: an empty file of mode 0 stands in for a device only root may create.
                using (new FileStream(path, FileMode.CreateNew, FileAccess.Write)) { }
                break;
            case TarEntryType.CharacterDevice or TarEntryType.BlockDevice or TarEntryType.Fifo:
                var type = entry.EntryType switch { TarEntryType.CharacterDevice => 0x2000u, TarEntryType.BlockDevice => 0x6000u, _ => 0x1000u };
                var dev = entry is PosixTarEntry posix ? Makedev((uint)posix.DeviceMajor, (uint)posix.DeviceMinor) : 0;
                Check(Mknod(path, type | ((uint)entry.Mode & 0xFFF), dev), "mknod", path);
                break;
            default:
                throw new UnsupportedLayerException($"'{name}' is a tar entry of type {entry.EntryType}");
        }
        // A hard link is its target's inode: it has no metadata of its own (and its header may not carry any).
        if (entry.EntryType != TarEntryType.HardLink) Restore(path, entry);
        Mark(path);
    }

    private void Restore(string path, TarEntry entry)
    {
        var symlink = entry.EntryType == TarEntryType.SymbolicLink;
        if (asRoot) Check(Lchown(path, entry.Uid, entry.Gid), "lchown", path);
        // After the owner: chown clears set-id bits.
        if (!symlink) Check(Chmod(path, (uint)entry.Mode & 0xFFF), "chmod", path);
        ClearXattrs(path);
        if (entry is PaxTarEntry pax)
            foreach (var (key, value) in pax.ExtendedAttributes)
            {
                if (!key.StartsWith(XattrPrefix, StringComparison.Ordinal)) continue;
                var xattr = key[XattrPrefix.Length..];
                if (xattr == "security.selinux") continue;
                if (value.Contains('\uFFFD') || xattr.Contains('\uFFFD')) throw new UnsupportedLayerException($"the xattr {xattr} of '{path}' is not UTF-8");
                var bytes = Encoding.UTF8.GetBytes(value);
                if (Lsetxattr(path, xattr, bytes, (nuint)bytes.Length, 0) != 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    // As umoci: a file system without xattrs, or a rootless unpack refused a privileged one, is not fatal.
                    if (errno == ENOTSUP || (!asRoot && errno == EPERM)) continue;
                    throw new IOException($"setxattr {xattr} on {path} failed (errno {errno})");
                }
            }
        var mtime = ToTimespec(entry.ModificationTime);
        var atime = entry is GnuTarEntry { AccessTime: var a } && a != default ? ToTimespec(a) : mtime;
        SetTimes(path, atime, mtime);
    }

    private void Whiteout(string dir, string file)
    {
        var opaque = file == OpaqueWhiteout;
        var path = opaque ? dir : dir + "/" + file[WhiteoutPrefix.Length..];
        if (Lstat(path) is not { } mode) return;
        if (!opaque && !_upper.Contains(Relative(path)))
        {
            RemoveAll(path, mode);
            return;
        }
        if (!IsDirectory(mode)) return;
        // An opaque directory (or a whited-out one this layer wrote into) loses what lower layers put in it, nothing of this layer.
        RemoveLower(path);
    }

    private void RemoveLower(string directory)
    {
        foreach (var child in Directory.EnumerateFileSystemEntries(directory))
        {
            if (Lstat(child) is not { } mode) continue;
            if (!_upper.Contains(Relative(child))) RemoveAll(child, mode);
            else if (IsDirectory(mode)) RemoveLower(child);
        }
    }

    private void Mark(string path)
    {
        for (var relative = Relative(path); relative.Length > 0; relative = relative.LastIndexOf('/') is var i and >= 0 ? relative[..i] : "")
            if (!_upper.Add(relative)) break;
    }

    private string Relative(string path) => path.Length > _root.Length ? path[(_root.Length + 1)..] : "";

    /// <summary>
    /// The path inside the root that <paramref name="unsafePath"/> names when every symbolic link on the way is read as if the
    /// root were / (filepath-securejoin's semantics, which umoci uses): ".." and absolute targets never leave the root.
    /// </summary>
    private string SecureJoin(string unsafePath)
    {
        var resolved = new List<string>();
        var pending = new Stack<string>(unsafePath.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var links = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            var candidate = _root + "/" + string.Join('/', resolved.Append(part));
            if (Lstat(candidate) is { } mode && (mode & 0xF000) == 0xA000)
            {
                if (++links > MaxSymlinks) throw new InvalidDataException($"too many symbolic links resolving '{unsafePath}' in the layer");
                var target = new FileInfo(candidate).LinkTarget ?? "";
                if (target.StartsWith('/')) resolved.Clear();
                foreach (var next in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.Push(next);
                continue;
            }
            resolved.Add(part);
        }
        return resolved.Count == 0 ? _root : _root + "/" + string.Join('/', resolved);
    }

    /// <summary>A tar name made relative and lexically clean ("./a/../b/" is "b"); ".." cannot climb above the root.</summary>
    private static string Clean(string name)
    {
        var parts = new List<string>();
        foreach (var part in name.Split('/', StringSplitOptions.RemoveEmptyEntries))
            if (part == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); }
            else if (part != ".") parts.Add(part);
        return string.Join('/', parts);
    }

    private static void RemoveAll(string path, uint mode)
    {
        if (IsDirectory(mode)) Directory.Delete(path, recursive: true);
        else File.Delete(path);
    }

    private static bool IsDirectory(uint mode) => (mode & 0xF000) == 0x4000;

    private static (long, long) ToTimespec(DateTimeOffset time)
    {
        var ticks = time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        return (Math.DivRem(ticks, TimeSpan.TicksPerSecond, out var rest) - (rest < 0 ? 1 : 0), ((rest + TimeSpan.TicksPerSecond) % TimeSpan.TicksPerSecond) * 100);
    }

    private static void SetTimes(string path, (long Sec, long Nsec) atime, (long Sec, long Nsec) mtime)
    {
        Timespec[] times = [new(atime.Sec, atime.Nsec), new(mtime.Sec, mtime.Nsec)];
        Check(Utimensat(AtFdCwd, path, times, AtSymlinkNofollow), "utimensat", path);
    }

    private static void ClearXattrs(string path)
    {
        var size = Llistxattr(path, null, 0);
        if (size <= 0) return;
        var names = new byte[size];
        size = Llistxattr(path, names, (nuint)names.Length);
        if (size <= 0) return;
        foreach (var name in Encoding.UTF8.GetString(names, 0, (int)size).Split('\0', StringSplitOptions.RemoveEmptyEntries))
            if (name != "security.selinux") _ = Lremovexattr(path, name);
    }

    private static uint? Lstat(string path) => Lstat(path, out var stat) ? stat.Mode : null;

    private static bool Lstat(string path, out StatX stat)
    {
        stat = default;
        if (StatxCall(AtFdCwd, path, AtSymlinkNofollow, StatxBasicStats, out var buffer) != 0) return false;
        stat = buffer;
        return true;
    }

    private static ulong Makedev(uint major, uint minor) =>
        ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8) | ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);

    private static void Check(int result, string call, string path)
    {
        if (result != 0) throw new IOException($"{call} {path} failed (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>Counts the bytes read through it and remembers whether the stream ended.</summary>
    private sealed class CountingStream(Stream inner) : ForwardReadStream
    {
        public long Count => BytesRead;
        public bool Ended { get; private set; }

        protected override int ReadCore(Span<byte> buffer)
        {
            var read = inner.Read(buffer);
            if (read == 0 && !buffer.IsEmpty) Ended = true;
            return read;
        }
    }

    private const int AtFdCwd = -100, AtSymlinkNofollow = 0x100, ENOTSUP = 95, EPERM = 1;
    private const uint StatxBasicStats = 0x7ff;

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct Timespec(long Sec, long Nsec);

    /// <summary>struct statx (linux/stat.h), the fields this reads and the rest as padding.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatX
    {
        [FieldOffset(28)] public ushort ModeField;
        [FieldOffset(64)] public long AtimeSec;
        [FieldOffset(72)] public uint AtimeNsecField;
        [FieldOffset(112)] public long MtimeSec;
        [FieldOffset(120)] public uint MtimeNsecField;

        public readonly uint Mode => ModeField;
        public readonly long AtimeNsec => AtimeNsecField;
        public readonly long MtimeNsec => MtimeNsecField;
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int StatxCall(int dirfd, string path, int flags, uint mask, out StatX buffer);

    [DllImport("libc", EntryPoint = "lchown", SetLastError = true)]
    private static extern int Lchown(string path, int uid, int gid);

    [DllImport("libc", EntryPoint = "chmod", SetLastError = true)]
    private static extern int Chmod(string path, uint mode);

    [DllImport("libc", EntryPoint = "symlink", SetLastError = true)]
    private static extern int Symlink(string target, string path);

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link(string target, string path);

    [DllImport("libc", EntryPoint = "mknod", SetLastError = true)]
    private static extern int Mknod(string path, uint mode, ulong dev);

    [DllImport("libc", EntryPoint = "utimensat", SetLastError = true)]
    private static extern int Utimensat(int dirfd, string path, Timespec[] times, int flags);

    [DllImport("libc", EntryPoint = "lsetxattr", SetLastError = true)]
    private static extern int Lsetxattr(string path, string name, byte[] value, nuint size, int flags);

    [DllImport("libc", EntryPoint = "llistxattr", SetLastError = true)]
    private static extern nint Llistxattr(string path, byte[]? list, nuint size);

    [DllImport("libc", EntryPoint = "lremovexattr", SetLastError = true)]
    private static extern int Lremovexattr(string path, string name);
}
