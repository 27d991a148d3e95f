namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>The "Fleet:Qemu" configuration section: how hosts whose driver is qemu-microvm run their guests.</summary>
public sealed class QemuOptions
{
    /// <summary>Local state: the guest image cache (guest/) and one directory per host (hosts/&lt;name&gt;/vms/&lt;vm id&gt;).</summary>
    public string StateDirectory { get; set; } = ".kraud";

    /// <summary>Where the guest image is built and cached; default &lt;StateDirectory&gt;/guest.</summary>
    public string? GuestDirectory { get; set; }

    /// <summary>One exact Debian kernel package (linux-image-&lt;abi&gt;-cloud-amd64); default: what linux-image-cloud-amd64 depends on.</summary>
    public string? KernelPackage { get; set; }

    public string Busybox { get; set; } = "/bin/busybox";
    public string QemuSystem { get; set; } = "qemu-system-x86_64";
    public string QemuImg { get; set; } = "qemu-img";
    public string Umoci { get; set; } = "umoci";
    public string MkfsErofs { get; set; } = "mkfs.erofs";

    /// <summary>The size cap of each host's image cache (layers and root file systems), least recently used first out.</summary>
    public int ImageCacheMiB { get; set; } = 20480;

    /// <summary>Upper bound for a guest's memory (0: as the pod asks). Test machines cannot give every pod what it asks.</summary>
    public int MaxMemoryMiB { get; set; }

    /// <summary>Upper bound for a guest's vCPUs (0: as the pod asks).</summary>
    public int MaxCpus { get; set; }

    /// <summary>Upper bound for the ephemeral disk in MiB (0: the pod's EphemeralGiB). Images are sparse, but test disks are small.</summary>
    public int MaxEphemeralMiB { get; set; }

    /// <summary>Upper bound for a volume replica in MiB on storage hosts (0: the volume's size). Replicas are sparse, but test volumes are small.</summary>
    public int MaxVolumeMiB { get; set; }

    /// <summary>
    /// At most this many bytes a second does a scrub read of each replica (QEMU's speed limit of its read job; 0: no bound). A
    /// scrub reads every byte of every replica, beside the guests of the compute host that runs it and of the storage hosts
    /// that serve it; unbounded, it takes what the disks and the two cores give and the tenants' I/O waits. 32 MiB/s scrubs a
    /// TiB in about nine hours, well within the week between two scrubs (Fleet:VolumeScrubHours).
    /// </summary>
    public long ScrubBytesPerSecond { get; set; } = 32L << 20;

    public string QemuStorageDaemon { get; set; } = "qemu-storage-daemon";

    /// <summary>
    /// Where a storage host's NBD exports listen. Loopback while hosts share one machine; a storage host's underlay address
    /// once the data plane gives it one (the TLS-PSK access per client holds either way).
    /// </summary>
    public string ExportAddress { get; set; } = "127.0.0.1";

    public int BootTimeoutSeconds { get; set; } = 60;

    /// <summary>How long a guest may take to power off after being asked before its QEMU is killed.</summary>
    public int StopTimeoutSeconds { get; set; } = 5;

    /// <summary>
    /// How long a killed QEMU may take to exit (a QEMU blocked in disk I/O dies only when the I/O returns) before the stop
    /// fails and is retried, rather than reported done while QEMU still holds the VM's disks.
    /// </summary>
    public int KillTimeoutSeconds { get; set; } = 60;

    /// <summary>
    /// The guest TSC frequency under TCG (kernel tsc_early_khz); null: the host's, when /proc/cpuinfo knows it. Without it
    /// a guest on a loaded host can hang calibrating its TSC.
    /// </summary>
    public int? GuestTscKhz { get; set; }

    /// <summary>
    /// Use KVM: true forces it, false forces TCG (software emulation), null (the default) lets a probe decide once per host
    /// runtime: KVM only when a guest really boots under it (see <see cref="AcceleratorProbe"/>).
    /// </summary>
    public bool? Kvm { get; set; }

    /// <summary>The KVM device whose presence makes the probe try KVM at all.</summary>
    public string KvmDevice { get; set; } = "/dev/kvm";

    /// <summary>How long the probe guest may take under KVM to report ready (a guest under working KVM needs well under one).</summary>
    public int KvmProbeSeconds { get; set; } = 5;

    /// <summary>
    /// A guest that has printed nothing at all on its console after this long will never boot (a hung accelerator, a kernel
    /// that cannot start): its boot fails then, not at <see cref="BootTimeoutSeconds"/>.
    /// </summary>
    public int FirstOutputSeconds { get; set; } = 10;

    /// <summary>
    /// Under TCG (software emulation, where every instruction of the boot costs), boot the uncompressed kernel at its PVH
    /// entry instead of the bzImage, and skip the kernel's crypto self-tests (cryptomgr.notests): together about a second of
    /// emulated work per boot here. What they give up, in TCG guests only: the kernel's random base address (KASLR, chosen by
    /// the bzImage's decompressor; the randomised memory regions stay), and the boot-time check of the guest kernel's crypto
    /// implementations against test vectors. Guests under KVM always boot the bzImage with both. False: TCG guests as well.
    /// </summary>
    public bool FastBootUnderTcg { get; set; } = true;

    public string ResolvedStateDirectory => Path.GetFullPath(StateDirectory);
    public string ResolvedGuestDirectory => Path.GetFullPath(GuestDirectory ?? Path.Combine(StateDirectory, "guest"));
}
