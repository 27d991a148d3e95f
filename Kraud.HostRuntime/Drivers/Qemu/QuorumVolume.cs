using System.Text.Json;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// A volume on block exports as a microVM's QEMU attaches it: one NBD node per healthy replica's export (TLS-PSK with
/// this microVM's identity), a quorum node over them, and QEMU's LUKS layer on top with the volume's data key. So
/// plaintext exists only in this QEMU and the guest; the replicas get ciphertext.
/// <para>
/// A write is acknowledged only when every child of the quorum took it (its vote threshold is its number of children),
/// and a write that a child failed stops the guest (werror=stop) until the host runtime has taken that child out
/// (<see cref="ResumeAfterFailedWriteAsync"/>); then the write is issued again, to the others. So every child in the
/// quorum holds every write the guest was told is done, and a child that lost its connection can come back on its own
/// (QEMU 7.2's NBD client reconnects, whatever reconnect-delay says) without ever answering a read with stale blocks: a
/// block it missed was never acknowledged while it was in the quorum. The child taken out is replaced by a stand-in
/// (<see cref="AddStandInAsync"/>), because QEMU fixes a quorum's vote threshold when it opens it and refuses fewer
/// children than that; <see cref="VolumeAttachmentSpec.VoteThreshold"/> is the fewest real replicas the guest may go on
/// writing to. For the same reason a guest booted while copies are missing has a stand-in for each
/// (<see cref="OpenStandInsAsync"/>): its threshold counts every copy the volume keeps, so a copy a resync brings in later
/// (it replaces a stand-in) takes every write as well, instead of sitting beyond a threshold fixed at boot.
/// </para>
/// </summary>
internal sealed class QuorumVolume(int index, VolumeAttachmentSpec spec)
{
    private readonly List<(Guid HostId, string Node, string Child)> _children = [];
    private readonly List<(string Node, string Child)> _standIns = [];
    private readonly HashSet<string> _failed = [];
    private int _added;
    private int _nodes;
    private int _slots;
    private int _takenOut;
    private int _takenOutAtResume;
    private long _size;
    private int _bootStandIns;

    public VolumeAttachmentSpec Spec => spec;
    public string Tls => $"voltls{index}";
    public string Quorum => $"volq{index}";
    public string Luks => $"vol{index}";
    public string Secret => $"volkey{index}";
    /// <summary>Held while the quorum's children change (briefly: a guest stopped on a failed write waits for it).</summary>
    public SemaphoreSlim Changes { get; } = new(1, 1);

    /// <summary>Held for a whole resync or scrub of this volume: one at a time.</summary>
    private SemaphoreSlim Jobs { get; } = new(1, 1);

    public IReadOnlyList<(Guid HostId, string Node, string Child)> Children => _children;

    /// <summary>
    /// Before <see cref="Args"/>: when the guest boots with fewer exports than the volume keeps copies, reads the size of an
    /// export (a stand-in must have its children's size: QEMU's quorum fails on children of different lengths). One
    /// qemu-img over NBD, only for a degraded boot.
    /// </summary>
    public async Task OpenStandInsAsync(QemuOptions options, string pskDirectory, CancellationToken ct)
    {
        var exports = spec.Exports!;
        if (spec.ReadOnly || spec.Replicas <= exports.Count) return;
        var qemuImg = ProcessRunner.Which(options.QemuImg) ?? throw new MicroVmBootException($"{options.QemuImg} is not installed (apt-get install qemu-utils)");
        var info = await ProcessRunner.RunAsync(qemuImg,
            ["info", "--output=json", "--object", BlockJobs.TlsCreds("t", "client", pskDirectory, spec.Access!.Identity),
                "--image-opts", LuksHeader.Nbd("", exports[0], spec.Access)], TimeSpan.FromSeconds(60), ct);
        if (info.ExitCode != 0) throw new MicroVmBootException($"cannot read the size of volume {spec.VolumeId}'s export: {info.Error.Trim()}");
        _size = JsonDocument.Parse(info.Output).RootElement.GetProperty("virtual-size").GetInt64();
        _bootStandIns = spec.Replicas - exports.Count;
    }

    /// <summary>The QEMU arguments (after the key's secret object); <paramref name="pskDirectory"/> holds this VM's key file.</summary>
    public IEnumerable<string> Args(string pskDirectory)
    {
        var access = spec.Access ?? throw new MicroVmBootException($"volume {spec.VolumeId} has exports but no access for this microVM");
        yield return "-object";
        yield return BlockJobs.TlsCreds(Tls, "client", pskDirectory, access.Identity);
        foreach (var export in spec.Exports!)
        {
            var node = NewNode();
            _children.Add((export.HostId, node, $"children.{_added++}"));
            yield return "-blockdev";
            yield return BlockJobs.NbdArg(node, export, access, Tls);
        }
        // Last, so that fifo reads (and the LUKS header's) go to the real replicas first.
        for (var i = 0; i < _bootStandIns; i++)
        {
            var node = NewNode() + "void";
            _standIns.Add((node, $"children.{_added++}"));
            yield return "-blockdev";
            yield return JsonSerializer.Serialize(StandIn(node));
        }
        yield return "-blockdev";
        // read-pattern=fifo: a read goes to the first child that answers it, not to every child to be compared (which cost
        // two thirds of a sequential read here, see docs/ARCHITECTURE.md); a child whose connection failed fails at once
        // and the next one answers. It never answers with blocks it missed: see the class's remarks. That the replicas
        // hold the same bytes is proven by CheckAsync.
        _slots = _children.Count + _standIns.Count;
        yield return $"driver=quorum,node-name={Quorum},vote-threshold={_slots},read-pattern=fifo," +
                     string.Join(',', _children.Select(c => c.Node).Concat(_standIns.Select(s => s.Node)).Select((n, i) => $"children.{i}={n}"));
        yield return "-blockdev";
        yield return $"driver=luks,key-secret={Secret},node-name={Luks},read-only={(spec.ReadOnly ? "on" : "off")},file={Quorum}";
        yield return "-device";
        // The serial is how the guest's /init finds the volume's disk to mount (disks appear in no fixed order). No iothread:
        // QEMU 7.2 refuses one on virtio-mmio under TCG ("ioeventfd is required for iothread").
        yield return $"virtio-blk-device,drive={Luks},serial={GuestWorkload.VolumeSerial(index)}" + (spec.ReadOnly ? "" : ",werror=stop");
    }

    /// <summary>Children in the quorum now, stand-ins included: never fewer than its vote threshold.</summary>
    private int Count
    {
        get
        {
            lock (_children) return _children.Count + _standIns.Count;
        }
    }

    public string NewNode() => $"vol{index}n{_nodes++}";

    /// <summary>
    /// Fills <paramref name="command"/>'s target replica while the guest runs, then takes it into the quorum and drops the
    /// replicas that are no longer the volume's. The copy runs above the LUKS layer (QEMU mirrors only from a device's
    /// top node), into a LUKS node over the target that has the volume's header: same key, same sectors, so the target
    /// ends up with the very same ciphertext. The guest is paused only to end the mirror and change the quorum.
    /// </summary>
    public async Task<ResyncOutcome> ResyncAsync(QmpClient qmp, ResyncVolumeReplica command, string workDirectory, QemuOptions options,
        Func<CopyProgress, Task> progress, CancellationToken ct)
    {
        await Jobs.WaitAsync(ct);
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var access = spec.Access!;
            await LuksHeader.CopyAsync(options, command.Sources[0], command.Target, access, workDirectory, ct);
            var node = NewNode();
            var top = node + "luks";
            await qmp.ExecuteAsync("blockdev-add", BlockJobs.NbdNode(node, command.Target, access, Tls), ct);
            long bytes;
            try
            {
                await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object>
                {
                    ["driver"] = "luks", ["node-name"] = top, ["key-secret"] = Secret, ["file"] = node,
                }, ct);
                var last = new CopyProgress(0, 0, 0);
                await BlockJobs.MirrorUntilReadyAsync(qmp, $"resync{index}", Luks, top, p =>
                {
                    last = p;
                    return progress(p);
                }, ct);
                bytes = last.TotalBytes;
            }
            catch
            {
                await ForgetAsync(qmp, top);
                await ForgetAsync(qmp, node);
                throw;
            }

            await Changes.WaitAsync(ct);
            var paused = System.Diagnostics.Stopwatch.GetTimestamp();
            double pauseMs;
            try
            {
                await qmp.ExecuteAsync("stop", null, ct);
                await BlockJobs.FinishMirrorAsync(qmp, $"resync{index}", ct);
                await qmp.ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = top }, ct);
                await qmp.ExecuteAsync("x-blockdev-change", new Dictionary<string, object> { ["parent"] = Quorum, ["node"] = node }, ct);
                lock (_children) _children.Add((command.Target.HostId, node, $"children.{_added++}"));
                var keep = command.Sources.Select(s => s.HostId).Append(command.Target.HostId).ToHashSet();
                // The target's host may have held a child already (a copy brought back): that one goes, the new one stays.
                foreach (var gone in _children.Where(c => !keep.Contains(c.HostId) || (c.HostId == command.Target.HostId && c.Node != node)).ToList())
                    await RemoveChildAsync(qmp, gone, ct);
                await TrimStandInsAsync(qmp, ct);
            }
            finally
            {
                await qmp.ExecuteAsync("cont", null, CancellationToken.None);
                pauseMs = System.Diagnostics.Stopwatch.GetElapsedTime(paused).TotalMilliseconds;
                Changes.Release();
            }

            var differences = await CheckAsync(qmp, command, ct);
            if (differences.Count > 0)
            {
                await Changes.WaitAsync(ct);
                try
                {
                    if (_children.FirstOrDefault(c => c.Node == node) is { Node: not null } target) await RemoveChildAsync(qmp, target, ct);
                }
                finally
                {
                    Changes.Release();
                }
                throw new ResyncException($"the new replica differs from its peers: {string.Join("; ", differences.Take(3))}");
            }
            return new ResyncOutcome(bytes, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, pauseMs);
        }
        finally
        {
            Jobs.Release();
        }
    }

    /// <summary>
    /// Proves that every replica in the guest's quorum, the new one included, holds the same bytes. The guest's quorum
    /// reads one child (fifo) and compares nothing, so the check has a quorum of its own in this QEMU: read-only, over
    /// new connections to the same exports, with voting reads that fail unless every replica returns the same bytes
    /// (<see cref="BlockJobs.CompareAsync"/>, which reads a block again when the guest's write to it was in flight).
    /// Every replica, not only the new one: the mirror copied what the first child returned, so a first child that
    /// differed from its peers would have passed its difference on, and the new replica would agree with it.
    /// </summary>
    private Task<IReadOnlyList<string>> CheckAsync(QmpClient qmp, ResyncVolumeReplica command, CancellationToken ct) =>
        WithCheckerAsync(qmp, command.Sources.Append(command.Target), _children.Count,
            (checker, _) => BlockJobs.CompareAsync(qmp, checker, $"check{index}", ct), ct);

    /// <summary>
    /// A quorum of this QEMU's own beside the guest's: read-only, over new connections to <paramref name="exports"/> for the
    /// guest's children, with voting reads that need <paramref name="threshold"/> equal answers; gone again after <paramref name="use"/>.
    /// </summary>
    private async Task<T> WithCheckerAsync<T>(QmpClient qmp, IEnumerable<ExportEndpoint> exports, int threshold,
        Func<string, IReadOnlyDictionary<string, Guid>, Task<T>> use, CancellationToken ct)
    {
        var byHost = exports.GroupBy(e => e.HostId).ToDictionary(g => g.Key, g => g.First());
        var checker = $"volchk{index}";
        var nodes = new Dictionary<string, Guid>();
        try
        {
            foreach (var child in _children)
            {
                if (!byHost.TryGetValue(child.HostId, out var export)) continue;
                var node = NewNode();
                var options = BlockJobs.NbdNode(node, export, spec.Access!, Tls);
                options["read-only"] = true;
                await qmp.ExecuteAsync("blockdev-add", options, ct);
                nodes[node] = child.HostId;
            }
            await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object>
            {
                ["driver"] = "quorum", ["node-name"] = checker, ["vote-threshold"] = Math.Clamp(threshold, 1, Math.Max(1, nodes.Count)),
                ["read-pattern"] = "quorum", ["children"] = nodes.Keys.ToList(), ["read-only"] = true,
            }, ct);
            return await use(checker, nodes);
        }
        finally
        {
            await ForgetAsync(qmp, checker);
            foreach (var node in nodes.Keys) await ForgetAsync(qmp, node);
        }
    }

    /// <summary>
    /// Scrubs the volume beside the running guest: a checker quorum over the guest's replicas whose reads vote by majority
    /// (<see cref="BlockJobs.VoteAsync"/>, confirmed by rereads because the guest writes meanwhile). A replica outvoted is
    /// taken out of the guest's quorum at once (its reads go to the first child, which may be that one), as far as the
    /// quorum's vote threshold lets it; the control plane then replaces it.
    /// </summary>
    public async Task<ScrubFindings> ScrubAsync(QmpClient qmp, ScrubVolumeReplicas command, long bytesPerSecond, CancellationToken ct)
    {
        await Jobs.WaitAsync(ct);
        try
        {
            var findings = await WithCheckerAsync(qmp, command.Replicas, command.Replicas.Count / 2 + 1,
                (checker, nodes) => BlockJobs.VoteAsync(qmp, checker, nodes, $"scrub{index}", bytesPerSecond, confirm: true, ct), ct);
            await Changes.WaitAsync(ct);
            try
            {
                foreach (var bad in findings.Bad) await TakeOutAsync(qmp, bad.ReplicaHostId);
            }
            finally
            {
                Changes.Release();
            }
            return findings;
        }
        finally
        {
            Jobs.Release();
        }
    }

    /// <summary>
    /// Takes the replica on <paramref name="hostId"/> out of the guest's quorum (a stand-in takes its place), unless that
    /// would leave fewer real replicas than a write needs (<see cref="VolumeAttachmentSpec.VoteThreshold"/>). Returns whether it did.
    /// </summary>
    public async Task<bool> TakeOutAsync(QmpClient qmp, Guid hostId)
    {
        (Guid HostId, string Node, string Child) child;
        lock (_children) child = _children.FirstOrDefault(c => c.HostId == hostId);
        if (child.Node is null || _children.Count - 1 < Math.Clamp(spec.VoteThreshold, 1, Math.Max(1, _slots))) return false;
        try
        {
            await RemoveChildAsync(qmp, child, CancellationToken.None);
        }
        catch (QmpException)
        {
            return false;
        }
        return true;
    }

    /// <summary>A child reported a failed read, write or flush: the next stop of the guest on a failed write takes it out.</summary>
    public void MarkFailed(string node)
    {
        lock (_children) _failed.Add(node);
    }

    /// <summary>
    /// The guest stopped because a write failed on a child (werror=stop; the quorum named that child just before): takes
    /// out every child that failed, so that the write, issued again when the guest goes on, reaches only replicas that
    /// hold every acknowledged write. Returns whether the guest may go on: a child was taken out since it last went on.
    /// When none could be (no child named, or too few replicas would be left) the guest stays stopped: a write it was
    /// told is done would otherwise be missing on a replica it reads.
    /// </summary>
    public async Task<bool> ResumeAfterFailedWriteAsync(QmpClient qmp)
    {
        List<Guid> failed;
        lock (_children) failed = _children.Where(c => _failed.Contains(c.Node)).Select(c => c.HostId).ToList();
        foreach (var host in failed) await TakeOutAsync(qmp, host);
        if (_takenOut == _takenOutAtResume) return false;
        _takenOutAtResume = _takenOut;
        return true;
    }

    /// <summary>Takes <paramref name="child"/> out of the quorum, after a stand-in came in when the quorum would have too few children.</summary>
    private async Task RemoveChildAsync(QmpClient qmp, (Guid HostId, string Node, string Child) child, CancellationToken ct)
    {
        if (Count - 1 < _slots) await AddStandInAsync(qmp, ct);
        await qmp.ExecuteAsync("x-blockdev-change", new Dictionary<string, object> { ["parent"] = Quorum, ["child"] = child.Child }, ct);
        await ForgetAsync(qmp, child.Node);
        lock (_children)
        {
            _children.Remove(child);
            _failed.Remove(child.Node);
        }
        _takenOut++;
    }

    /// <summary>
    /// A child that takes every write and fails every read (blkdebug over null-co, the size of the replicas): in a quorum
    /// whose vote threshold counts it, writes need every real replica left, and fifo reads, which come to it last, go on
    /// failing where every replica failed.
    /// </summary>
    private async Task AddStandInAsync(QmpClient qmp, CancellationToken ct)
    {
        if (_size == 0)
        {
            var nodes = await qmp.ExecuteAsync("query-named-block-nodes", new Dictionary<string, object> { ["flat"] = true }, ct);
            _size = nodes.EnumerateArray().First(n => n.GetProperty("node-name").GetString() == Quorum).GetProperty("image").GetProperty("virtual-size").GetInt64();
        }
        var node = NewNode() + "void";
        await qmp.ExecuteAsync("blockdev-add", StandIn(node), ct);
        try
        {
            await qmp.ExecuteAsync("x-blockdev-change", new Dictionary<string, object> { ["parent"] = Quorum, ["node"] = node }, ct);
        }
        catch (QmpException)
        {
            await ForgetAsync(qmp, node);
            throw;
        }
        lock (_children) _standIns.Add((node, $"children.{_added++}"));
    }

    private Dictionary<string, object> StandIn(string node) => new()
    {
        ["driver"] = "raw", ["node-name"] = node,
        ["file"] = new Dictionary<string, object>
        {
            ["driver"] = "blkdebug",
            ["inject-error"] = new[] { new Dictionary<string, object> { ["event"] = "read_aio", ["errno"] = 5, ["once"] = false } },
            ["image"] = new Dictionary<string, object> { ["driver"] = "null-co", ["size"] = _size },
        },
    };

    /// <summary>Takes stand-ins out while the quorum has more children than its vote threshold (a replica came back).</summary>
    private async Task TrimStandInsAsync(QmpClient qmp, CancellationToken ct)
    {
        while (Count > _slots && _standIns.Count > 0)
        {
            var standIn = _standIns[^1];
            await qmp.ExecuteAsync("x-blockdev-change", new Dictionary<string, object> { ["parent"] = Quorum, ["child"] = standIn.Child }, ct);
            await ForgetAsync(qmp, standIn.Node);
            lock (_children) _standIns.Remove(standIn);
        }
    }

    /// <summary>The replica's host and the volume, when <paramref name="node"/> is a child of the guest's quorum (not a checker's).</summary>
    /// <remarks>Asked from the event watcher's thread while a resync may change the children: under their lock.</remarks>
    public Guid? HostOfChild(string node)
    {
        lock (_children) return _children.FirstOrDefault(c => c.Node == node) is { Node: not null } c ? c.HostId : null;
    }

    private static async Task ForgetAsync(QmpClient qmp, string node)
    {
        try
        {
            await qmp.ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = node }, CancellationToken.None);
        }
        catch (QmpException) { }
    }
}

/// <summary>The LUKS header of a volume, copied as ciphertext from one replica's export to another's (no key needed).</summary>
internal static class LuksHeader
{
    public static async Task CopyAsync(QemuOptions options, ExportEndpoint from, ExportEndpoint to, ExportAccess access, string workDirectory,
        CancellationToken ct)
    {
        var qemuImg = ProcessRunner.Which(options.QemuImg) ?? throw new ResyncException($"{options.QemuImg} is not installed (apt-get install qemu-utils)");
        var psk = BlockJobs.WritePskDirectory(Path.Combine(workDirectory, $"psk-{Guid.NewGuid():N}"), access);
        try
        {
            string[] tls = ["--object", BlockJobs.TlsCreds("t", "client", psk, access.Identity)];
            var info = await ProcessRunner.RunAsync(qemuImg, ["info", "--output=json", .. tls, "--image-opts", $"driver=luks,{Nbd("file.", from, access)}"],
                TimeSpan.FromSeconds(60), ct);
            if (info.ExitCode != 0) throw new ResyncException($"cannot read the volume's LUKS header: {info.Error.Trim()}");
            var header = JsonDocument.Parse(info.Output).RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("payload-offset").GetInt64();
            var copy = await ProcessRunner.RunAsync(qemuImg,
                ["convert", "-n", .. tls, "--image-opts", "--target-image-opts",
                    $"driver=raw,offset=0,size={header},{Nbd("file.", from, access)}", $"driver=raw,offset=0,size={header},{Nbd("file.", to, access)}"],
                TimeSpan.FromSeconds(120), ct);
            if (copy.ExitCode != 0) throw new ResyncException($"cannot copy the LUKS header to the new replica: {copy.Error.Trim()}");
        }
        finally
        {
            Directory.Delete(psk, recursive: true);
        }
    }

    public static string Nbd(string prefix, ExportEndpoint export, ExportAccess access) =>
        $"{prefix}driver=nbd,{prefix}server.type=inet,{prefix}server.host={export.Address},{prefix}server.port={export.Port}," +
        $"{prefix}export={access.Identity},{prefix}tls-creds=t,{prefix}open-timeout={BlockJobs.OpenTimeoutSeconds}";
}

/// <summary>A guest's quorum found the replica bad (see QemuMicroVmDriver.ReplicaReportedBad).</summary>
public sealed record QuorumReport(Guid VmId, Guid VolumeId, ReplicaFault Fault);

/// <summary>
/// A guest's stop on a failed write, from QEMU's BLOCK_IO_ERROR (its own clock) to the host runtime's <c>cont</c> answered
/// (see QemuMicroVmDriver.GuestWentOnAfterFailedWrite).
/// </summary>
public sealed record FailedWritePause(Guid VmId, Guid VolumeId, double Milliseconds);
