using System.Buffers.Binary;
using K4os.Compression.LZ4;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// The uncompressed kernel (vmlinux) inside a bzImage, for QEMU to load as an ELF at its PVH entry point. Under TCG the
/// bzImage's own decompressor is emulated instruction by instruction and takes about half a second of every boot; the
/// vmlinux skips it. It also skips what the decompressor does besides: choosing a random place for the kernel (KASLR),
/// which is why only TCG guests boot it, and only while <see cref="QemuOptions.FastBootUnderTcg"/> is on.
/// </summary>
public static class PvhKernel
{
    /// <summary>The ELF note (owner "Xen", type XEN_ELFNOTE_PHYS32_ENTRY) that gives the PVH entry; QEMU loads no ELF kernel without it.</summary>
    private const uint Phys32EntryNote = 18;

    /// <summary>
    /// The vmlinux of <paramref name="bzImage"/>, or null when it has none to give: a kernel built without CONFIG_PVH, or one
    /// whose payload is not LZ4 (the one compression this reads; Debian's cloud kernel uses it), which then boots as a bzImage.
    /// </summary>
    public static byte[]? Extract(ReadOnlySpan<byte> bzImage, string kernelConfig)
    {
        if (!kernelConfig.Contains("\nCONFIG_PVH=y\n", StringComparison.Ordinal)) return null;
        // The boot protocol's setup header: "HdrS", version 2.08+ for the payload's place (Documentation/arch/x86/boot.rst).
        if (bzImage.Length < 0x250 || BinaryPrimitives.ReadUInt32LittleEndian(bzImage[0x202..]) != 0x53726448
            || BinaryPrimitives.ReadUInt16LittleEndian(bzImage[0x206..]) < 0x208)
            return null;
        var setupSectors = bzImage[0x1F1] == 0 ? 4 : bzImage[0x1F1];
        var offset = (setupSectors + 1) * 512 + (int)BinaryPrimitives.ReadUInt32LittleEndian(bzImage[0x248..]);
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bzImage[0x24C..]);
        if (offset < 0 || length < 8 || offset + length > bzImage.Length) return null;
        var vmlinux = DecodeLegacyLz4(bzImage.Slice(offset, length));
        return vmlinux is not null && HasPvhEntry(vmlinux) ? vmlinux : null;
    }

    /// <summary>
    /// The kernel's LZ4 payload: the legacy frame (magic 0x184C2102, then blocks of up to 8 MiB, each after its compressed
    /// size) and, as the kernel's build appends to every payload, the uncompressed size in the last 4 bytes.
    /// </summary>
    private static byte[]? DecodeLegacyLz4(ReadOnlySpan<byte> payload)
    {
        const uint magic = 0x184C2102;
        const int blockSize = 8 << 20;
        if (BinaryPrimitives.ReadUInt32LittleEndian(payload) != magic) return null;
        var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(payload[^4..]);
        if (size <= 0) return null;
        var output = new byte[size];
        var written = 0;
        var position = 4;
        var end = payload.Length - 4;
        while (position + 4 <= end)
        {
            var chunk = BinaryPrimitives.ReadUInt32LittleEndian(payload[position..]);
            position += 4;
            if (chunk == magic) continue; // concatenated frames repeat the magic
            if (chunk > (uint)(end - position)) return null;
            var decoded = LZ4Codec.Decode(payload.Slice(position, (int)chunk), output.AsSpan(written, Math.Min(blockSize, size - written)));
            if (decoded < 0) return null;
            written += decoded;
            position += (int)chunk;
        }
        return written == size ? output : null;
    }

    /// <summary>A 64-bit ELF with the PVH entry note in one of its PT_NOTE segments.</summary>
    public static bool HasPvhEntry(ReadOnlySpan<byte> elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2) return false;
        var phoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf[0x20..]);
        var phentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x36..]);
        var phnum = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x38..]);
        for (var i = 0; i < phnum; i++)
        {
            var header = elf[(int)(phoff + i * phentsize)..];
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != 4) continue; // PT_NOTE
            var start = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[0x08..]);
            var size = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]);
            if (start < 0 || size < 0 || start + size > elf.Length) return false;
            var notes = elf.Slice((int)start, (int)size);
            while (notes.Length >= 12)
            {
                var nameSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(notes);
                var descSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(notes[4..]);
                var type = BinaryPrimitives.ReadUInt32LittleEndian(notes[8..]);
                if (type == Phys32EntryNote && nameSize == 4 && notes[12..16].SequenceEqual("Xen\0"u8)) return true;
                var next = 12 + Align4(nameSize) + Align4(descSize);
                if (next > notes.Length) break;
                notes = notes[next..];
            }
        }
        return false;

        static int Align4(int n) => (n + 3) & ~3;
    }
}
