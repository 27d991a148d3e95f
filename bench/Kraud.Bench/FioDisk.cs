using System.Text;
using System.Text.RegularExpressions;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Bench;

/// <summary>
/// fio for the bench's guests, whose initramfs has busybox only: Debian's fio with every shared library <c>ldd</c> lists
/// and the dynamic loader, on an ext4 file system in a LUKS file that the driver attaches read-only as a volume of a
/// simulated storage host (its own path for such volumes, nothing added to it). The guest's /init mounts it at
/// <see cref="MountPath"/>, and the guest runs fio through the loader (<see cref="Command"/>). Every other guest's
/// initramfs stays as small as it is: only the bench's guests get this disk.
/// </summary>
public static partial class FioDisk
{
    public const string MountPath = "/fio";

    /// <summary>fio as the guest runs it: no /lib there, so its libraries come from the disk, by the loader they were built for.</summary>
    public const string Command = $"{MountPath}/lib/ld-linux-x86-64.so.2 --library-path {MountPath}/lib {MountPath}/bin/fio";

    /// <summary>
    /// Builds the disk under <paramref name="scratch"/> and puts it where <paramref name="driver"/> looks for the image of
    /// volume <paramref name="volumeId"/>, encrypted with <paramref name="key"/> as the driver opens it.
    /// </summary>
    public static async Task BuildAsync(QemuMicroVmDriver driver, Guid volumeId, byte[] key, string scratch, CancellationToken ct)
    {
        var fio = ProcessRunner.Which("fio") ?? throw new InvalidOperationException("fio is not installed (Debian: apt-get install fio)");
        var ldd = await ProcessRunner.RunAsync("ldd", [fio], TimeSpan.FromSeconds(30), ct);
        if (ldd.ExitCode != 0) throw new InvalidOperationException($"ldd {fio} failed: {ldd.Error.Trim()}");
        var tree = Path.Combine(scratch, "fio-tree");
        Directory.CreateDirectory(Path.Combine(tree, "bin"));
        Directory.CreateDirectory(Path.Combine(tree, "lib"));
        File.Copy(fio, Path.Combine(tree, "bin", "fio"));
        foreach (Match library in Library().Matches(ldd.Output))
        {
            // Under its soname (the name the binaries ask for); File.Copy copies what a symlink points to.
            var name = library.Groups["name"].Value;
            var path = library.Groups["path"].Success ? library.Groups["path"].Value : name;
            File.Copy(path, Path.Combine(tree, "lib", Path.GetFileName(name)), overwrite: true);
        }
        var bytes = Directory.EnumerateFiles(tree, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        var sizeMiB = bytes * 5 / 4 / 1048576 + 16;
        var ext4 = Path.Combine(scratch, "fio.ext4");
        var mkfs = await ProcessRunner.RunAsync("mke2fs", ["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-d", tree, ext4, $"{sizeMiB}M"],
            TimeSpan.FromSeconds(120), ct);
        if (mkfs.ExitCode != 0) throw new InvalidOperationException($"mke2fs could not build fio's disk: {mkfs.Error.Trim()}");

        var image = driver.VolumeImageOf(volumeId);
        Directory.CreateDirectory(Path.GetDirectoryName(image)!);
        var qemuImg = ProcessRunner.Which(driver.Options.QemuImg) ?? throw new InvalidOperationException("qemu-img is not installed (Debian: apt-get install qemu-utils)");
        // The driver's passphrase for a volume is its key in base64 (QemuMicroVmDriver feeds it so).
        var passphrase = Convert.ToBase64String(key);
        var created = await LuksImage.CreateAsync(qemuImg, image, $"{sizeMiB}M", Encoding.ASCII.GetBytes(passphrase), Path.Combine(scratch, "fio.key"), ct);
        if (created.ExitCode != 0) throw new InvalidOperationException($"qemu-img could not create fio's disk: {created.Error.Trim()}");
        // The passphrase on the command line is fine here: the disk holds Debian's binaries, nothing to keep secret.
        var copy = await ProcessRunner.RunAsync(qemuImg,
            ["convert", "-n", "-f", "raw", "--object", $"secret,id=k,data={passphrase}", "--target-image-opts", ext4,
                $"driver=luks,key-secret=k,file.driver=file,file.filename={QemuOption.Value(image)}"],
            TimeSpan.FromSeconds(120), ct);
        if (copy.ExitCode != 0) throw new InvalidOperationException($"qemu-img could not write fio's disk: {copy.Error.Trim()}");
        File.Delete(ext4);
        Directory.Delete(tree, recursive: true);
    }

    /// <summary>An ldd line with a file: "libz.so.1 => /lib/…/libz.so.1 (0x…)", or the loader's "/lib64/ld-linux-x86-64.so.2 (0x…)".</summary>
    [GeneratedRegex(@"^\s*(?:(?<name>\S+) => (?<path>/\S+)|(?<name>/\S*ld-linux\S*)) \(0x[0-9a-f]+\)", RegexOptions.Multiline, 1000)]
    private static partial Regex Library();
}
