using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Volumes;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>
/// The one path every volume command takes, as PodStreams is for pods: fetch for writing, check tenant and version,
/// decide, append, and turn the change into host work (reserve or free storage, set up or erase replicas, keep or
/// destroy the wrapped data key) and follow-ups (placement, pods that waited for the volume).
/// </summary>
public static class VolumeStreams
{
    /// <summary>The volume's stream for a decision appended in this session (Marten's FetchForWriting).</summary>
    public static Task<Loaded<Volume>> FetchForWritingAsync(IDocumentSession session, Guid volumeId, CancellationToken ct = default) =>
        Streams.FetchForWritingAsync<Volume>(session, volumeId, ct);

    /// <param name="newKey">The data key a replica generated, wrapped: kept in the key store if the decider accepts it.</param>
    public static async Task<Volume> ExecuteAsync(IDocumentSession session, IMessageContext context, VolumeCommand command, Principal by,
        int? expectedVersion = null, string? correlationId = null, Loaded<Volume>? loaded = null, WrappedKey? newKey = null)
    {
        loaded ??= await FetchForWritingAsync(session, command.VolumeId);
        var (before, version) = loaded;
        Streams.Guard("Volume", command.VolumeId, before.Exists, before.TenantId, version, by, expectedVersion);

        var events = VolumeDecider.Decide(command, before);
        if (events.Count == 0) return before;
        var after = events.Aggregate(before, (state, e) => state.Evolve(e));

        var stamp = AuditStamp.For(context, by, after.TenantId, command.GetType().Name, correlationId, scope: command.VolumeId.ToString());
        Streams.Append(loaded, events, stamp);

        await ApplyEffectsAsync(session, context, command, events, before, after, stamp, newKey);
        await RetryVolumePlacementHandler.ScheduleAsync(context, before, after);
        return after;
    }

    private static async Task ApplyEffectsAsync(IDocumentSession session, IMessageContext context, VolumeCommand command, IReadOnlyList<object> events,
        Volume before, Volume after, AuditStamp stamp, WrappedKey? newKey)
    {
        context.CorrelationId = stamp.CorrelationId;
        if (events.OfType<VolumeKeyCreated>().Any())
            session.Store(VolumeKeyRecord.From(after.Id, newKey ?? throw new InvalidOperationException("A volume key was accepted without its wrapped bytes.")));
        // Crypto-erase of the last copy: with the wrapped key gone too, nothing can decrypt the data again.
        if (events.OfType<VolumeKeysDestroyed>().Any()) session.Delete<VolumeKeyRecord>(after.Id);
        if (events.OfType<VolumeDeleted>().Any()) session.Delete<NameClaim>(NameClaim.For("volume", after.TenantId.ToString(), after.Name));

        await Streams.LockAsync(session, VolumeReactions.Reserved(before, after).Concat(VolumeReactions.Released(before, after)).Select(r => r.HostId));
        foreach (var r in VolumeReactions.Reserved(before, after))
            session.Events.Append(r.HostId, new StorageReserved(r.HostId, after.Id, after.SizeGiB, command.At)).Stamp(stamp);
        foreach (var r in VolumeReactions.Released(before, after))
            session.Events.Append(r.HostId, new StorageReleased(r.HostId, after.Id, command.At)).Stamp(stamp);

        WrappedKey? key = newKey;
        foreach (var reaction in VolumeReactions.HostCommands(before, after))
        {
            switch (reaction)
            {
                case VolumeReactions.Provision(var replica, var withKey):
                    key = await ProvisionAsync(session, context, after, replica, withKey, key);
                    break;
                case VolumeReactions.Destroy(var hostId, var hostName):
                    await context.EndpointFor(HostQueues.Uri(hostName)).SendAsync(new DestroyVolumeReplica(hostId, after.Id));
                    break;
            }
        }

        await VolumeExportAccess.ApplyAsync(session, context, events, before, after);

        if (command is not ApplyVolumePlacement && after.Unplaced > 0)
            await context.PublishAsync(new ScheduleVolume(after.Id, stamp.CorrelationId));
        // Pods that waited for this volume can be placed now; a shared one (GFS on block exports) first needs its file server.
        if (after.Usable && !before.Usable)
        {
            if (FileServer.Serves(after)) await context.PublishAsync(new StartFileServer(after.Id));
            foreach (var pod in after.Attachments)
                await context.PublishAsync(new SchedulePod(pod.PodId, stamp.CorrelationId));
        }
        if (after.Deleting && !before.Deleting && before.Class == VolumeClass.Gfs && before.OnBlockExports)
            await context.PublishAsync(new StopFileServer(after.Id));
    }

    /// <summary>
    /// Tells the replica's storage host to set it up, and starts the command's deadline (ReplicaAnswerDeadline): the
    /// command can be lost on its way, and nothing else would notice while the host stays alive.
    /// </summary>
    /// <param name="withKey">The replica needs the volume's data key (simulated storage; a block export never gets it).</param>
    /// <param name="key">The wrapped key if the caller has it already.</param>
    /// <param name="attempt">How many times this command has been sent, this time included.</param>
    /// <returns>The wrapped key if it was needed, for the next replica of the same change.</returns>
    public static async Task<WrappedKey?> ProvisionAsync(IDocumentSession session, IMessageContext context, Volume volume, VolumeReplica replica,
        bool withKey, WrappedKey? key, int attempt = 1)
    {
        // A block export holds ciphertext only: its storage host is never sent the key, not even wrapped.
        var sendsKey = withKey && !volume.OnBlockExports;
        if (sendsKey) key ??= (await session.LoadAsync<VolumeKeyRecord>(volume.Id))?.Key
                              ?? throw new InvalidOperationException($"Volume {volume.Id} has a key id but no wrapped key in the key store.");
        var peers = volume.Replicas.Where(r => r.Phase == ReplicaPhase.Healthy).Select(r => r.HostName).ToList();
        await context.EndpointFor(HostQueues.Uri(replica.HostName)).SendAsync(new ProvisionVolumeReplica(replica.HostId, volume.Id, volume.TenantId,
            volume.Class.ToString().ToUpperInvariant(), volume.SizeGiB, sendsKey ? key : null, peers));
        await context.PublishAsync(new AwaitReplicaAnswer(volume.Id, replica.HostId, replica.Since, attempt));
        return key;
    }
}

/// <summary>
/// The key store: a volume's data key, wrapped under the fleet's key-encryption key (which the control plane does not
/// hold). A document, not an event, because crypto-erase must be able to delete it; events only name the key.
/// </summary>
public sealed class VolumeKeyRecord
{
    public Guid Id { get; set; }
    public WrappedKey Key { get; set; } = new(Guid.Empty, "", "");

    public static VolumeKeyRecord From(Guid volumeId, WrappedKey key) => new() { Id = volumeId, Key = key };
}
