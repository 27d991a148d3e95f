using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Volumes;

/// <summary>
/// The volume's scrub may be due (the round's pick); the decider knows whether it is, by the period the round picked with
/// (<paramref name="Every"/>), so that pick and decision never disagree.
/// </summary>
public sealed record ScrubVolumeIfDue(Guid VolumeId, TimeSpan Every);

/// <summary>
/// Asks for the scrub of every volume on block exports that was not scrubbed within Fleet:VolumeScrubHours: a guest's
/// quorum reads one replica (fifo) and compares nothing, so a replica that rots silently would be read as it is for as
/// long as it stays the first child. Runs on one node (a role); each volume's request is a message of its own, so one
/// volume that cannot be decided on does not hold the others up, and a round lost with its node is repeated by the next.
/// A storage host takes part in at most Fleet:VolumeScrubsPerStorageHost scrubs at once (<see cref="ScrubRound.Pick"/>); the
/// rest wait for a later round.
/// </summary>
public sealed class VolumeScrubRound(IDocumentStore store, IWolverineRuntime runtime, FleetOptions fleet, TimeProvider time, ILogger<VolumeScrubRound> logger)
    : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(Math.Max(1, fleet.VolumeScrubRoundSeconds));
    protected override string FailureMessage => "The volume scrub round failed";

    protected override Task RoundAsync(CancellationToken ct) => RunOnceAsync(ct);

    /// <summary>One round, as the node that holds the role runs it every Fleet:VolumeScrubRoundSeconds.</summary>
    internal async Task RunOnceAsync(CancellationToken ct)
    {
        if (fleet.VolumeScrubHours <= 0) return;
        var now = Time.GetUtcNow();
        var every = TimeSpan.FromHours(fleet.VolumeScrubHours);
        var dueBefore = (now - every).UtcTicks;
        await using var session = store.QuerySession();
        // The due ones, and those with a scrub asked for: they hold their storage hosts' share of scrubs.
        var views = await session.Query<VolumeView>()
            .Where(v => v.ScrubFromTicks <= dueBefore || v.Volume.ScrubRequestedAt != null)
            .ToListAsync(ct);
        var bus = new MessageBus(runtime);
        foreach (var id in ScrubRound.Pick(views.Select(v => v.Volume), now, every, fleet.VolumeScrubsPerStorageHost))
            await bus.PublishAsync(new ScrubVolumeIfDue(id, every));
    }
}

public static class ScrubVolumeIfDueHandler
{
    private static readonly Principal Round = Principal.System("volume-scrub");

    public static Task Handle(ScrubVolumeIfDue due, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        VolumeStreams.ExecuteAsync(session, context, new ScrubVolume(due.VolumeId, Round, time.GetUtcNow(), due.Every), Round);
}
