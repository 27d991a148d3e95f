using System.Collections.Concurrent;
using System.Security.Cryptography;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Storage;

/// <summary>
/// The volume replicas a storage host keeps, each with the volume's data key in memory only. There is no data plane
/// behind it (no bytes are copied between hosts); what is real is the key handling: data keys generated here, wrapped
/// under the fleet's key-encryption key for the control plane to keep, unwrapped by each replica, and destroyed on
/// erase or power loss. Faults can be injected, as with the simulated hypervisor.
/// </summary>
public sealed class ReplicaStore(Lazy<KeyEncryptionKey> kek, TimeSpan resyncDelay, TimeProvider time)
{
    private readonly ConcurrentDictionary<Guid, Replica> _replicas = new();
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentDictionary<Guid, int> _drops = new();
    private readonly ConcurrentDictionary<Guid, int> _dropped = new();

    private sealed record Replica(Guid VolumeId, int SizeGiB, byte[] DataKey);

    public IReadOnlyCollection<Guid> Volumes => _replicas.Keys.ToList();

    /// <summary>The next <paramref name="count"/> replica set-ups on this host fail, as a broken disk would make them.</summary>
    public void FailNextProvisions(int count, string reason)
    {
        for (var i = 0; i < count; i++) _failures.Enqueue(reason);
    }

    /// <summary>
    /// The next <paramref name="count"/> commands to set up a replica of one of <paramref name="tenantId"/>'s volumes are
    /// dropped unanswered, as a command lost between the control plane and this host would be (the tenant keeps the fault
    /// to one spec's volumes on hosts that other specs share).
    /// </summary>
    public void DropNextProvisions(Guid tenantId, int count) => _drops.AddOrUpdate(tenantId, count, (_, left) => left + count);

    /// <summary>True when this command is one to drop (and counts it).</summary>
    public bool Drops(ProvisionVolumeReplica command)
    {
        while (_drops.TryGetValue(command.TenantId, out var left) && left > 0)
        {
            if (!_drops.TryUpdate(command.TenantId, left - 1, left)) continue;
            _dropped.AddOrUpdate(command.TenantId, 1, (_, n) => n + 1);
            return true;
        }
        return false;
    }

    /// <summary>For tests: how many of the tenant's commands this host dropped (see <see cref="DropNextProvisions"/>).</summary>
    public int DroppedProvisions(Guid tenantId) => _dropped.GetValueOrDefault(tenantId);

    public void ClearFaults()
    {
        _failures.Clear();
        _drops.Clear();
    }

    /// <returns>The wrapped data key when this replica generated it, else null.</returns>
    public async Task<WrappedKey?> ProvisionAsync(ProvisionVolumeReplica command, CancellationToken ct)
    {
        if (_replicas.ContainsKey(command.VolumeId)) return null;
        if (_failures.TryDequeue(out var fault)) throw new ReplicaException(fault);
        WrappedKey? generated = null;
        byte[] dataKey;
        if (command.Key is { } given)
        {
            try
            {
                dataKey = kek.Value.Unwrap(given);
            }
            catch (CryptographicException e)
            {
                throw new ReplicaException($"cannot unwrap the volume's data key: {e.Message}");
            }
            // A replacement copies the volume from its healthy peers before it counts as healthy.
            if (command.Peers.Count > 0 && resyncDelay > TimeSpan.Zero) await Task.Delay(resyncDelay, time, ct);
        }
        else
        {
            dataKey = RandomNumberGenerator.GetBytes(32);
            generated = kek.Value.Wrap(Guid.NewGuid(), dataKey);
        }
        if (!_replicas.TryAdd(command.VolumeId, new Replica(command.VolumeId, command.SizeGiB, dataKey)))
        {
            CryptographicOperations.ZeroMemory(dataKey);
            return null;
        }
        return generated;
    }

    /// <summary>Crypto-erase: the data key is overwritten and forgotten; false when this host held no replica.</summary>
    public bool Destroy(Guid volumeId)
    {
        if (!_replicas.TryRemove(volumeId, out var replica)) return false;
        CryptographicOperations.ZeroMemory(replica.DataKey);
        return true;
    }

    /// <summary>The replica's disk dies: the host no longer holds it (its heartbeats leave it out).</summary>
    public bool Lose(Guid volumeId) => Destroy(volumeId);

    /// <summary>Power loss: keys lived in memory only, so every replica's data is unreadable from now on.</summary>
    public void LoseAll()
    {
        foreach (var id in _replicas.Keys.ToList()) Destroy(id);
    }

    /// <summary>For tests: every data key this host holds now.</summary>
    public IReadOnlyList<byte[]> DataKeysForTests() => _replicas.Values.Select(r => r.DataKey.ToArray()).ToList();

    /// <summary>For tests: the data key this host holds for a volume (the control plane never sees it).</summary>
    public byte[]? DataKeyOf(Guid volumeId) => _replicas.TryGetValue(volumeId, out var r) ? r.DataKey.ToArray() : null;
}

public sealed class ReplicaException(string reason) : Exception(reason);
