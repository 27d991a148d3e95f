using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>A bootable guest: Debian's cloud kernel and Kraud's own initramfs, as cached on this machine.</summary>
/// <param name="Kernel">The kernel as Debian ships it (a bzImage).</param>
/// <param name="PvhKernel">The same kernel uncompressed, booted at its PVH entry (see <see cref="Qemu.PvhKernel"/>); null when it has none.</param>
public sealed record GuestImage(string Kernel, string Initrd, string KernelPackage, string Directory, string? PvhKernel = null);

/// <summary>
/// Builds the guest image from Debian packages only and caches it: the kernel of one exact
/// <c>linux-image-&lt;abi&gt;-cloud-amd64</c> package (downloaded with apt-get, unpacked with dpkg-deb) and an initramfs
/// written here (newc cpio) holding busybox-static, the virtio modules of that kernel and <see cref="InitScript"/>.
/// The cache directory name is a hash of every input, so a new kernel, busybox or init script yields a new image and the
/// same inputs always give the same bytes (no timestamps, fixed order, uid 0).
/// </summary>
public sealed partial class GuestImageBuilder(string cacheDirectory, string? kernelPackage = null, string busybox = "/bin/busybox")
{
    /// <summary>Debian's meta package; its one dependency names the current exact kernel package.</summary>
    public const string KernelMetaPackage = "linux-image-cloud-amd64";

    /// <summary>Bumped whenever the layout of the initramfs changes in a way the hashed inputs do not show.</summary>
    private const string FormatVersion = "kraud-guest-3";

    /// <summary>Load order matters: each module needs the symbols of the ones before it.</summary>
    internal static readonly string[] Modules =
    [
        "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/drivers/block/virtio_blk.ko",
        // The network device (kraud_network in the init script loads these three, in this order).
        "kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
        // OCI images: the workload's channels (virtio-console), its read-only root file system (erofs) and the writable overlay.
        "kernel/drivers/char/virtio_console.ko", "kernel/lib/libcrc32c.ko", "kernel/fs/erofs/erofs.ko", "kernel/fs/overlayfs/overlay.ko",
        // GFS volumes: the kernel's NFS server (a file server's guest, kraud-nfs-server) and its NFSv4 client (kraud_mount_nfs),
        // loaded only by guests that need them.
        "kernel/net/sunrpc/sunrpc.ko", "kernel/fs/nfs_common/grace.ko", "kernel/fs/lockd/lockd.ko", "kernel/fs/nfs_common/nfs_acl.ko",
        "kernel/net/sunrpc/auth_gss/auth_rpcgss.ko", "kernel/fs/nfsd/nfsd.ko", "kernel/fs/netfs/netfs.ko", "kernel/fs/fscache/fscache.ko",
        "kernel/fs/nfs/nfs.ko", "kernel/net/dns_resolver/dns_resolver.ko", "kernel/fs/nfs/nfsv4.ko",
    ];

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(5);

    public string CacheDirectory { get; } = Path.GetFullPath(cacheDirectory);

    /// <summary>Returns the cached image, building it first if these inputs were never built here.</summary>
    public async Task<GuestImage> EnsureAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(CacheDirectory);
        // Several host runtimes (and a CI step) may share one cache: one builder at a time, across processes.
        using var cacheLock = await LockAsync(Path.Combine(CacheDirectory, ".lock"), ct);

        var package = kernelPackage ?? await ResolveKernelPackageAsync(ct);
        if (!KernelPackageName().IsMatch(package))
            throw new InvalidOperationException($"'{package}' is not an exact Debian cloud kernel package name (linux-image-<abi>-cloud-amd64).");
        var abi = package["linux-image-".Length..];
        var deb = await DownloadAsync(package, ct);
        var busyboxBytes = await File.ReadAllBytesAsync(busybox, ct);
        if (IsDynamicallyLinked(busyboxBytes))
            throw new InvalidOperationException($"{busybox} is dynamically linked; the guest has no libc. Install busybox-static.");

        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n',
            FormatVersion, Path.GetFileName(deb), Convert.ToHexStringLower(SHA256.HashData(busyboxBytes)), InitScript, Fstab, WorkloadFunctions, NfsServerScript, string.Join(',', Modules)))))[..16];
        var directory = Path.Combine(CacheDirectory, $"{abi}-{key}");
        var image = new GuestImage(Path.Combine(directory, "vmlinuz"), Path.Combine(directory, "initrd.cpio"), package, directory);
        // The directory appears whole or not at all (moved into place below); a kernel without a PVH entry has no vmlinux.
        if (File.Exists(image.Kernel) && File.Exists(image.Initrd))
            return WithPvhKernel(image);

        var work = Path.Combine(CacheDirectory, $".build-{Guid.NewGuid():N}");
        try
        {
            var unpacked = Path.Combine(work, "deb");
            Directory.CreateDirectory(unpacked);
            await Run("dpkg-deb", ["-x", deb, unpacked], null, ct);
            var output = Path.Combine(work, "image");
            Directory.CreateDirectory(output);
            var bzImage = await File.ReadAllBytesAsync(Path.Combine(unpacked, "boot", $"vmlinuz-{abi}"), ct);
            await File.WriteAllBytesAsync(Path.Combine(output, "vmlinuz"), bzImage, ct);
            var config = Path.Combine(unpacked, "boot", $"config-{abi}");
            var kernelConfig = File.Exists(config) ? await File.ReadAllTextAsync(config, ct) : "";
            if (PvhKernel.Extract(bzImage, kernelConfig) is { } vmlinux)
                await File.WriteAllBytesAsync(Path.Combine(output, "vmlinux"), vmlinux, ct);

            var cpio = new NewcArchive();
            foreach (var dir in new[] { "bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "run", "sys", "tmp" }) cpio.Directory(dir);
            // The kernel opens /dev/console for init before anything is mounted: without the node init has no output.
            cpio.CharacterDevice("dev/console", 5, 1);
            cpio.File("bin/busybox", busyboxBytes, executable: true);
            cpio.Symlink("bin/sh", "busybox");
            // Every applet's link made here rather than by "busybox --install" in /init: one step less in each boot.
            foreach (var applet in (await Run(busybox, ["--list"], null, ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                         .Where(a => a is not ("busybox" or "sh") && !a.Contains('/')).Order(StringComparer.Ordinal))
                cpio.Symlink($"bin/{applet}", "busybox");
            cpio.File("etc/fstab", Encoding.ASCII.GetBytes(Fstab), executable: false);
            cpio.File("init", Encoding.ASCII.GetBytes(InitScript), executable: true);
            cpio.File("lib/kraud-workload.sh", Encoding.ASCII.GetBytes(WorkloadFunctions), executable: false);
            cpio.File($"bin/{NfsServerProgram}", Encoding.ASCII.GetBytes(NfsServerScript), executable: true);
            foreach (var module in Modules)
            {
                var path = Path.Combine(unpacked, "lib", "modules", abi, module);
                if (!File.Exists(path))
                    throw new InvalidOperationException($"{package} has no {module} (compressed modules are not supported by this builder).");
                cpio.File($"lib/modules/{Path.GetFileName(module)}", await File.ReadAllBytesAsync(path, ct), executable: false);
            }
            // Uncompressed: under TCG decompressing the initramfs would cost boot time for a few saved megabytes.
            await File.WriteAllBytesAsync(Path.Combine(output, "initrd.cpio"), cpio.ToArray(), ct);
            await File.WriteAllTextAsync(Path.Combine(output, "manifest.txt"),
                $"kernel-package {package}\ndeb {Path.GetFileName(deb)}\nbusybox {Convert.ToHexStringLower(SHA256.HashData(busyboxBytes))}\n", ct);
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
            Directory.Move(output, directory);
            return WithPvhKernel(image);
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    private static GuestImage WithPvhKernel(GuestImage image)
    {
        var vmlinux = Path.Combine(image.Directory, "vmlinux");
        return File.Exists(vmlinux) ? image with { PvhKernel = vmlinux } : image;
    }

    /// <summary>The exact kernel package the meta package currently depends on (never a glob, which pulls every version).</summary>
    public static async Task<string> ResolveKernelPackageAsync(CancellationToken ct)
    {
        var output = await Run("apt-cache", ["depends", KernelMetaPackage], null, ct);
        var match = Regex.Match(output, @"Depends:\s*(?<package>linux-image-\S+-cloud-amd64)", RegexOptions.ExplicitCapture, TimeSpan.FromSeconds(1));
        return match.Success
            ? match.Groups["package"].Value
            : throw new InvalidOperationException($"apt-cache knows no dependency of {KernelMetaPackage}; run apt-get update first.");
    }

    private async Task<string> DownloadAsync(string package, CancellationToken ct)
    {
        var debs = Path.Combine(CacheDirectory, "debs");
        Directory.CreateDirectory(debs);
        // apt-get download names the file <package>_<version>_<arch>.deb; this matches our own cache, not the archive.
        var cached = Directory.GetFiles(debs, $"{package}_*.deb").Order(StringComparer.Ordinal).LastOrDefault();
        if (cached is not null) return cached;
        await Run("apt-get", ["download", package], debs, ct);
        return Directory.GetFiles(debs, $"{package}_*.deb").SingleOrDefault()
            ?? throw new InvalidOperationException($"apt-get download {package} left no .deb in {debs}.");
    }

    /// <summary>A static ELF has no PT_INTERP program header.</summary>
    public static bool IsDynamicallyLinked(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2) throw new InvalidOperationException("busybox is not a 64-bit ELF file.");
        var phoff = (long)BitConverter.ToUInt64(elf, 0x20);
        var phentsize = BitConverter.ToUInt16(elf, 0x36);
        var phnum = BitConverter.ToUInt16(elf, 0x38);
        for (var i = 0; i < phnum; i++)
            if (BitConverter.ToUInt32(elf, (int)(phoff + i * phentsize)) == 3) return true;
        return false;
    }

    private static async Task<IDisposable> LockAsync(string path, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + CommandTimeout;
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Linux: held until this stream is disposed or the process dies.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, ct);
            }
        }
    }

    private static async Task<string> Run(string file, string[] args, string? workingDirectory, CancellationToken ct)
    {
        var result = await ProcessRunner.RunAsync(file, args, CommandTimeout, ct, workingDirectory);
        return result.ExitCode == 0
            ? result.Output
            : throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({result.ExitCode}): {result.Error.Trim()}");
    }

    [GeneratedRegex(@"^linux-image-[0-9][0-9a-z.+~-]*-cloud-amd64$", RegexOptions.None, matchTimeoutMilliseconds: 1000)]
    private static partial Regex KernelPackageName();

    /// <summary>
    /// PID 1 of every guest. The host runtime reads the console for KRAUD-* lines: READY (with the guest's uptime) once the
    /// disks are there and the workload's file systems are mounted, FAILED when the guest cannot come up, EXIT with the
    /// workload's exit code (the guest then powers off). With kraud.config=1 the host sends the workload's definition on the
    /// virtio-console port kraud.config (see <see cref="GuestWorkload"/>): with an image it mounts the image's erofs read-only
    /// under a writable overlay on the ephemeral disk (tmpfs without one), mounts the volumes and runs the workload chrooted
    /// into it as the image's user; stdout and stderr go to the ports kraud.stdout and kraud.stderr. It powers off when the
    /// console sends KRAUD-POWEROFF. The modules come from the kernel package because the cloud kernel builds virtio-mmio,
    /// virtio-blk and the rest as modules; the devices are found through ACPI (LNRO0005), since that kernel has no
    /// virtio_mmio.device= support.
    /// </summary>
    public const string InitScript = """
        #!/bin/sh
        export PATH=/bin
        mount -a
        for m in virtio_ring virtio virtio_mmio virtio_blk; do
          insmod /lib/modules/$m.ko || echo "KRAUD-WARN cannot load $m"
        done
        for m in virtio_console libcrc32c erofs overlay; do
          insmod /lib/modules/$m.ko || echo "KRAUD-WARN cannot load $m"
        done
        arg() { for kv in $(cat /proc/cmdline); do case "$kv" in "$1="*) echo "${kv#*=}";; esac; done; }
        # The guest's end of its tap (Fleet:Network = wireguard): kraud.net=ip4,gateway4[,ip6,gateway6], kraud.mtu. Addresses are
        # host routes to the gateway, which the host answers for; the gateway's .1 is also the tenant's resolver.
        kraud_network() {
          net=$(arg kraud.net)
          [ -n "$net" ] || return 0
          for m in failover net_failover virtio_net; do insmod /lib/modules/$m.ko || echo "KRAUD-WARN cannot load $m"; done
          n=0
          while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 250 ]; do usleep 20000; n=$((n+1)); done
          if [ ! -e /sys/class/net/eth0 ]; then
            echo "KRAUD-FAILED the network device did not appear"
            poweroff -f
          fi
          old_ifs=$IFS; IFS=,; set -- $net; IFS=$old_ifs
          ip link set lo up
          ip link set eth0 mtu "$(arg kraud.mtu)" up
          ip addr add "$1/32" dev eth0 && ip route add "$2" dev eth0 && ip route add default via "$2" dev eth0 \
            || echo "KRAUD-WARN cannot configure $1 via $2"
          if [ -n "$3" ]; then
            echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
            ip -6 addr add "$3/128" dev eth0 && ip -6 route add "$4" dev eth0 && ip -6 route add default via "$4" dev eth0 \
              || echo "KRAUD-WARN cannot configure $3 via $4"
          fi
          mkdir -p /etc
          echo "nameserver $2" > /etc/resolv.conf
        }
        . /lib/kraud-workload.sh
        disks=$(arg kraud.disks)
        i=0
        present() { n=0; for d in /dev/vd?; do [ -b "$d" ] && n=$((n+1)); done; echo $n; }
        while [ "$(present)" -lt "${disks:-0}" ] && [ $i -lt 500 ]; do usleep 20000; i=$((i+1)); done
        if [ "$(present)" -lt "${disks:-0}" ]; then
          echo "KRAUD-FAILED only $(present) of ${disks} disks appeared"
          poweroff -f
        fi
        kraud_network
        kraud_workload_setup
        echo "KRAUD-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
        kraud_workload_start
        while read -r line; do
          case "$line" in KRAUD-POWEROFF*) break;; esac
        done
        kraud_workload_stop
        echo "KRAUD-HALT uptime=$(cut -d' ' -f1 /proc/uptime)"
        kraud_shutdown

        """;

    /// <summary>What /init mounts first, in one process (each fork and exec of busybox costs tens of milliseconds under TCG).</summary>
    public const string Fstab = """
        proc /proc proc defaults 0 0
        sysfs /sys sysfs defaults 0 0
        devtmpfs /dev devtmpfs defaults 0 0
        tmpfs /run tmpfs defaults 0 0
        tmpfs /tmp tmpfs defaults 0 0

        """;

    /// <summary>
    /// The workload part of <see cref="InitScript"/>: shell functions it calls (kept apart so the rest of /init can change
    /// without touching them). The host's definition of the workload (/run/kraud/config) sets kraud_image, kraud_uid,
    /// kraud_gid and kraud_workdir and defines kraud_volumes (mounts, through kraud_mount_volume) and kraud_workload (the
    /// command with its environment, run through whatever prefix it is given).
    /// </summary>
    public const string WorkloadFunctions = """
        kraud_fail() { echo "KRAUD-FAILED $*"; sync; poweroff -f; }
        kraud_disk() { for b in /sys/block/vd*; do [ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && echo "/dev/${b##*/}" && return; done; }
        kraud_port() { for p in /sys/class/virtio-ports/*; do [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && echo "/dev/${p##*/}" && return; done; }
        kraud_wait_port() {
          i=0
          while [ -z "$(kraud_port "$1")" ] && [ $i -lt 500 ]; do usleep 20000; i=$((i+1)); done
          kraud_port "$1"
        }
        kraud_has_fs() { [ "$(dd if="$1" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')" = "53ef" ]; }
        kraud_mount_volume() {
          dev=$(kraud_disk "$1"); target="$kraud_root$3"
          [ -n "$dev" ] || kraud_fail "the disk of volume $3 ($1) is missing"
          if ! kraud_has_fs "$dev"; then
            [ "$2" = ro ] && kraud_fail "volume $3 holds no file system and is mounted read-only"
            mke2fs -q -F "$dev" >/dev/null 2>&1 || kraud_fail "cannot make a file system on volume $3"
          fi
          mkdir -p "$target"
          mount -t ext4 -o "$2" "$dev" "$target" || kraud_fail "cannot mount volume $3"
          kraud_mounted="$target $kraud_mounted"
        }
        kraud_load() { for m in "$@"; do [ -d "/sys/module/$m" ] || insmod "/lib/modules/$m.ko" || echo "KRAUD-WARN cannot load $m"; done; }
        # A GFS volume: NFSv4.2 from its file server's VPC address, hard (a request waits through a failover instead of failing),
        # retransmitted after 2 s so that a file server back at the same address is found again within seconds. The server
        # may still be starting: tried for a minute.
        kraud_mount_nfs() {
          kraud_load sunrpc grace lockd netfs fscache nfs dns_resolver nfsv4
          target="$kraud_root$3"
          mkdir -p "$target"
          i=0
          until mount -t nfs4 -o "$2,hard,vers=4.2,timeo=20,retrans=2,addr=$1" "$1:/" "$target" 2>/tmp/nfs-mount.err; do
            i=$((i+1))
            [ $i -lt 60 ] || kraud_fail "cannot mount volume $3 from its file server $1: $(cat /tmp/nfs-mount.err)"
            sleep 1
          done
          kraud_mounted="$target $kraud_mounted"
        }
        kraud_mount_rootfs() {
          image=$(kraud_disk kraud-rootfs)
          [ -n "$image" ] || kraud_fail "the image's root file system disk is missing"
          mkdir -p /run/kraud/image /run/kraud/rw /run/kraud/root
          # The guest may have booted while the host built the image on this disk: what the kernel read of it then (its
          # partition scan) is stale now, so its cached blocks go before the mount.
          blockdev --flushbufs "$image" || echo "KRAUD-WARN cannot drop the cached blocks of $image"
          mount -t erofs -o ro "$image" /run/kraud/image || kraud_fail "cannot mount the image's root file system"
          scratch=$(kraud_disk kraud-ephemeral)
          if [ -n "$scratch" ]; then
            # Fewer inodes than mke2fs's default: the inode tables are written out in full, through the disk's encryption.
            mke2fs -q -F -i 65536 "$scratch" >/dev/null 2>&1 || kraud_fail "cannot make a file system on the ephemeral disk"
            mount -t ext4 "$scratch" /run/kraud/rw || kraud_fail "cannot mount the ephemeral disk"
            kraud_mounted="/run/kraud/rw"
          else
            mount -t tmpfs -o mode=0755 tmpfs /run/kraud/rw
          fi
          mkdir -p /run/kraud/rw/upper /run/kraud/rw/work
          mount -t overlay overlay -o lowerdir=/run/kraud/image,upperdir=/run/kraud/rw/upper,workdir=/run/kraud/rw/work /run/kraud/root \
            || kraud_fail "cannot mount the writable overlay"
          r=/run/kraud/root
          mkdir -p "$r/proc" "$r/sys" "$r/dev" "$r/tmp"
          mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" && mount -t devtmpfs devtmpfs "$r/dev" || kraud_fail "cannot mount /proc, /sys, /dev"
          mkdir -p "$r/dev/pts" "$r/dev/shm"
          mount -t devpts devpts "$r/dev/pts"; mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
          # The tenant's resolver (kraud_network wrote it) in the image's root, where the workload looks for it.
          if [ -f /etc/resolv.conf ]; then mkdir -p "$r/etc" && cat /etc/resolv.conf > "$r/etc/resolv.conf"; fi
          kraud_root=$r
          kraud_mounted="$r/dev/shm $r/dev/pts $r/dev $r/sys $r/proc $r $kraud_mounted"
        }
        kraud_workload_setup() {
          kraud_root=""; kraud_mounted=""
          [ "$(arg kraud.config)" = 1 ] || return 0
          port=$(kraud_wait_port kraud.config)
          [ -n "$port" ] || kraud_fail "the host's workload port did not appear"
          IFS= read -r config < "$port"
          mkdir -p /run/kraud
          echo "$config" | base64 -d > /run/kraud/config || kraud_fail "the workload definition is not base64"
          . /run/kraud/config
          [ "$kraud_image" = 1 ] && kraud_mount_rootfs
          type kraud_volumes >/dev/null 2>&1 && kraud_volumes
          return 0
        }
        kraud_run() {
          out=$(kraud_port kraud.stdout); err=$(kraud_port kraud.stderr)
          if [ "$kraud_image" = 1 ]; then
            mkdir -p "$kraud_root$kraud_workdir"
            kraud_workload /bin/busybox nsenter "-r$kraud_root" "-w$kraud_root$kraud_workdir" -S "$kraud_uid" -G "$kraud_gid" -F -- \
              < /dev/null > "${out:-/dev/console}" 2> "${err:-/dev/console}"
          else
            kraud_workload < /dev/null > "${out:-/dev/console}" 2> "${err:-/dev/console}"
          fi
        }
        kraud_workload_start() {
          type kraud_workload >/dev/null 2>&1 || return 0
          # The watcher survives a stop's SIGTERM (its handler resets to the default in the workload) to report the exit.
          ( trap ':' TERM; ( kraud_run ); status=$?; echo "KRAUD-EXIT status=$status"; kraud_shutdown ) &
          kraud_pid=$!
        }
        kraud_workload_stop() {
          [ -n "$kraud_pid" ] || return 0
          kill -TERM -1 2>/dev/null
          i=0
          while [ $i -lt 30 ] && kill -0 "$kraud_pid" 2>/dev/null; do usleep 100000; i=$((i+1)); done
          kill -KILL -1 2>/dev/null
        }
        kraud_shutdown() {
          sync
          for m in $kraud_mounted; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
          sync
          poweroff -f
        }

        """;

    /// <summary>The file server program of GFS volumes, in /bin of every guest (see <see cref="NfsServerScript"/>).</summary>
    public const string NfsServerProgram = "kraud-nfs-server";

    /// <summary>
    /// A GFS volume's file server: run as the workload of the volume's file server microVM, which has the volume attached as
    /// a disk (mounted at the directory given, ext4 made on first use by /init). It exports that directory's data/ with the
    /// kernel's NFS server, NFSv4.1/4.2 only (no rpcbind, no mountd), sync (a write a client was told is stable is on the
    /// replicas' quorum), to every client that reaches it: the tenant's VPC firewall decides who does. What rpc.mountd would
    /// tell the kernel is written into its export caches here: one client domain, the export as the NFSv4 root (fsid 0),
    /// and each client address that asks is put into the domain. NFSv4 client state is recorded on the volume itself
    /// (v4recovery/), so that a file server started again elsewhere after a failover lets the clients reclaim their opens
    /// and locks during a grace period of 10 s (the default 90 s would stall every client that long).
    /// </summary>
    public const string NfsServerScript = """
        #!/bin/sh
        root=${1:?the file system to serve}
        fail() { echo "kraud-nfs-server: $*" >&2; exit 1; }
        for m in sunrpc grace lockd nfs_acl auth_rpcgss nfsd; do
          [ -d "/sys/module/$m" ] || insmod "/lib/modules/$m.ko" || fail "cannot load $m"
        done
        mkdir -p "$root/data" "$root/v4recovery" || fail "cannot write to $root"
        grep -q " /proc/fs/nfsd " /proc/mounts || mount -t nfsd nfsd /proc/fs/nfsd || fail "cannot mount the nfsd control file system"
        echo 10 > /proc/fs/nfsd/nfsv4leasetime && echo 10 > /proc/fs/nfsd/nfsv4gracetime || fail "cannot set the lease and grace times"
        echo "$root/v4recovery" > /proc/fs/nfsd/nfsv4recoverydir || fail "cannot set the recovery directory"
        echo "-3 +4 +4.1 +4.2" > /proc/fs/nfsd/versions || fail "cannot choose NFSv4"
        forever=2147483647
        # The client domain exists once an address is mapped to it; the export and its fsid-0 key name it.
        echo "nfsd 0.0.0.0 $forever kraud" > /proc/net/rpc/auth.unix.ip/channel || fail "cannot create the client domain"
        # flags: INSECURE_PORT 0x2 | NOSUBTREECHECK 0x400 | FSID 0x2000 (no ASYNC: sync; no ROOTSQUASH: workloads run as root)
        echo "kraud $root/data $forever 9218 65534 65534 0" > /proc/net/rpc/nfsd.export/channel || fail "cannot export $root/data"
        echo "kraud 1 \x00000000 $forever $root/data" > /proc/net/rpc/nfsd.fh/channel || fail "cannot make $root/data the NFSv4 root"
        echo "tcp 2049" > /proc/fs/nfsd/portlist || fail "cannot listen on port 2049"
        echo 8 > /proc/fs/nfsd/threads || fail "cannot start the server threads"
        # Stopped (the microVM powers off): the server threads end first, so that the volume can be unmounted cleanly.
        trap 'echo 0 > /proc/fs/nfsd/threads; sync; exit 0' TERM INT
        echo "kraud-nfs-server: serving $root/data over NFSv4 on port 2049"
        while :; do
          while read -r class address; do
            echo "$class $address $forever kraud" > /proc/net/rpc/auth.unix.ip/channel
          done < /proc/net/rpc/auth.unix.ip/channel
          usleep 100000
        done

        """;
}

/// <summary>The newc ("070701") cpio format the kernel unpacks as initramfs: a header of hex fields per entry.</summary>
internal sealed class NewcArchive
{
    private readonly MemoryStream _out = new();
    private uint _inode = 1;

    public void Directory(string name) => Entry(name, 0x4000 | 0x1ED, [], 0, 0);

    public void File(string name, byte[] data, bool executable) => Entry(name, 0x8000 | (executable ? 0x1EDu : 0x1A4u), data, 0, 0);

    public void Symlink(string name, string target) => Entry(name, 0xA000 | 0x1FF, Encoding.ASCII.GetBytes(target), 0, 0);

    public void CharacterDevice(string name, uint major, uint minor) => Entry(name, 0x2000 | 0x180, [], major, minor);

    public byte[] ToArray()
    {
        Entry("TRAILER!!!", 0, [], 0, 0, inode: 0);
        // The kernel reads the archive in 512-byte blocks, as cpio writes it.
        Pad(512);
        return _out.ToArray();
    }

    private void Entry(string name, uint mode, byte[] data, uint rdevMajor, uint rdevMinor, uint? inode = null)
    {
        var nameBytes = Encoding.ASCII.GetBytes(name + "\0");
        uint[] fields = [inode ?? _inode++, mode, 0, 0, (mode & 0xF000) == 0x4000 ? 2u : 1u, 0, (uint)data.Length, 0, 0, rdevMajor, rdevMinor, (uint)nameBytes.Length, 0];
        var header = new StringBuilder("070701");
        foreach (var field in fields) header.Append(field.ToString("x8"));
        _out.Write(Encoding.ASCII.GetBytes(header.ToString()));
        _out.Write(nameBytes);
        Pad(4);
        _out.Write(data);
        Pad(4);
    }

    private void Pad(int alignment)
    {
        while (_out.Length % alignment != 0) _out.WriteByte(0);
    }
}
