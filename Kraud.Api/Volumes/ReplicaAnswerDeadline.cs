using JasperFx.Core;
using Kraud.Domain.Access;
using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Configuration;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>A replica's storage host was sent the command to set it up (the <paramref name="Attempt"/>th time).</summary>
public sealed record AwaitReplicaAnswer(Guid VolumeId, Guid HostId, DateTimeOffset Since, int Attempt);

/// <summary>The deadline of that command: has the replica answered?</summary>
public sealed record ReplicaAnswerDue(Guid VolumeId, Guid HostId, DateTimeOffset Since, int Attempt);

/// <summary>
/// A command to a host travels through the host's queue and can be lost on the way, and a host runtime that never handled
/// it stays alive and silent: without a deadline the volume would stay PROVISIONING for good. The deadline is a durable
/// scheduled message (it outlives a restart of this node, and another node fires it when this one dies). An unanswered
/// command is sent again (it is idempotent: a host that set the replica up already answers where it serves it); after
/// Fleet:ReplicaAnswerAttempts sends the replica fails and the volume scheduler places it on another host.
/// </summary>
public static class ReplicaAnswerDeadlineHandler
{
    private static readonly Principal Deadline = Principal.System("replica-deadline");

    public static DeliveryMessage<ReplicaAnswerDue> Handle(AwaitReplicaAnswer sent, FleetOptions fleet) =>
        new ReplicaAnswerDue(sent.VolumeId, sent.HostId, sent.Since, sent.Attempt).DelayedFor(fleet.ReplicaAnswerSeconds.Seconds());

    public static async Task Handle(ReplicaAnswerDue due, IDocumentSession session, IMessageContext context, FleetOptions fleet, TimeProvider time,
        ILogger<ReplicaAnswerDue> logger)
    {
        var loaded = await VolumeStreams.FetchForWritingAsync(session, due.VolumeId);
        var volume = loaded.State;
        switch (ReplicaAnswer.Judge(volume, due.HostId, due.Since, due.Attempt, fleet.ReplicaAnswerAttempts))
        {
            case ReplicaAnswer.Verdict.SendAgain:
                var replica = volume.Replica(due.HostId)!;
                logger.LogWarning("Volume {VolumeId}: host {Host} did not answer the command to set up its replica within {Seconds} s; sending it again ({Attempt} of {Attempts})",
                    volume.Id, replica.HostName, fleet.ReplicaAnswerSeconds, due.Attempt + 1, fleet.ReplicaAnswerAttempts);
                await VolumeStreams.ProvisionAsync(session, context, volume, replica, withKey: !replica.MakesKey, key: null, due.Attempt + 1);
                break;
            case ReplicaAnswer.Verdict.GiveUp:
                var host = volume.Replica(due.HostId)!.HostName;
                logger.LogWarning("Volume {VolumeId}: host {Host} answered none of {Attempts} commands to set up its replica; the replica goes elsewhere",
                    volume.Id, host, fleet.ReplicaAnswerAttempts);
                await VolumeStreams.ExecuteAsync(session, context, new RecordReplicaReport(volume.Id, due.HostId,
                    ReplicaAnswer.Unanswered(host, fleet.ReplicaAnswerAttempts, fleet.ReplicaAnswerSeconds), time.GetUtcNow()), Deadline, loaded: loaded);
                break;
        }
    }
}
