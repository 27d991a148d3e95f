using System.Security.Cryptography;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Domain.Volumes;

/// <summary>
/// A GFS volume on block exports is served by a file server: a one-replica pod the volume owns, which attaches the volume
/// as a disk exactly as a BLOCK volume is attached (quorum over the replicas' exports + LUKS in its hypervisor) and exports
/// its file system over NFSv4 into the tenant's VPC; every other pod that mounts the volume mounts that export. The pod is
/// placed, replaced after a host failure and addressed like any pod. It lives alone in a namespace of its own, so its
/// microVM always has the namespace's first address: a replacement on another host comes back at the same VPC address,
/// and the clients' hard mounts carry on against it.
/// </summary>
public static class FileServer
{
    /// <summary>Where the file server's guest mounts the volume; the program exports its data/ directory.</summary>
    public const string MountPath = "/srv/gfs";

    /// <summary>The program in Kraud's guest image that serves the volume (its initramfs holds the kernel's NFS server).</summary>
    public const string Program = "/bin/kraud-nfs-server";

    /// <summary>The name pods of file servers carry; no image is pulled for them (the program is Kraud's own).</summary>
    public const string PodName = "file-server", Image = "kraud/gfs-file-server";

    /// <summary>One vCPU and the memory the kernel's NFS server and page cache need.</summary>
    public const int Cpu = 1, MemoryMiB = 256;

    /// <summary>Volumes whose bytes are on block exports need a file server to be shared; simulated storage holds no bytes.</summary>
    public static bool Serves(Volume volume) => volume is { Class: VolumeClass.Gfs, Exists: true, Deleting: false, Deleted: false } && volume.OnBlockExports;

    /// <summary>The file server's pod id, derived from the volume's: whoever asks for it first creates it, a second ask finds it.</summary>
    public static Guid PodId(Guid volumeId)
    {
        Span<byte> input = stackalloc byte[16 + 11];
        volumeId.TryWriteBytes(input);
        "file-server"u8.CopyTo(input[16..]);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        // RFC 9562 version 8 (custom) and variant bits, so that the id is a well-formed UUID.
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash[..16], bigEndian: true);
    }

    /// <summary>The namespace the file server is alone in (a DNS label, one per volume).</summary>
    public static string Namespace(Guid volumeId) => $"gfs-{volumeId:N}"[..16];

    /// <summary>Whether this pod is the volume's file server (which attaches the volume as a disk) or one of its clients.</summary>
    public static bool IsServer(Pod pod, Guid volumeId) => pod.Owner is { Kind: ResourceOwner.Volume } o && o.Id == volumeId && pod.Id == PodId(volumeId);

    public static CreatePod Create(Volume volume, Principal by, DateTimeOffset at) =>
        new(PodId(volume.Id), volume.TenantId,
            new PodSpec(PodName, Namespace(volume.Id), Image, [Program, MountPath], new Dictionary<string, string>(), Cpu, MemoryMiB, volume.Zone,
                Confidential: false, EphemeralGiB: 0, [new VolumeMount(volume.Id, MountPath, ReadOnly: false, VolumeClass.Gfs)]),
            1, by, at, new ResourceOwner(ResourceOwner.Volume, volume.Id, volume.Name));

    /// <summary>Where clients reach the file server now: the VPC address of its running microVM; null while it is not serving.</summary>
    public static string? Address(Pod? server) =>
        server?.Live.FirstOrDefault(i => i.Phase == VmPhase.Running) is { Ip4: { } ip4 } ? ip4 : null;

    /// <summary>
    /// The address the file server has while it is being placed or boots (after a failover: the same one, see above); a
    /// client booting meanwhile mounts it as soon as it serves.
    /// </summary>
    public static string? Addressed(Pod? server) => server?.Live.Select(i => i.Ip4).FirstOrDefault(ip4 => ip4 is not null);
}
