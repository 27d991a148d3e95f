using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Volumes;

/// <summary>The volume's scrub may be due (the round's pick); the decider knows whether it is.</summary>
public sealed record ScrubVolumeIfDue(Guid VolumeId);

/// <summary>
/// Asks for the scrub of every volume on block exports that was not scrubbed within Fleet:VolumeScrubHours: a guest's
/// quorum reads one replica (fifo) and compares nothing, so a replica that rots silently would be read as it is for as
/// long as it stays the first child. Runs on one node (a role); each volume's request is a message of its own, so one
/// volume that cannot be decided on does not hold the others up, and a round lost with its node is repeated by the next.
/// </summary>
public sealed class VolumeScrubRound(IDocumentStore store, IWolverineRuntime runtime, FleetOptions fleet, TimeProvider time, ILogger<VolumeScrubRound> logger)
    : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(Math.Max(1, fleet.VolumeScrubRoundSeconds));
    protected override string FailureMessage => "The volume scrub round failed";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        if (fleet.VolumeScrubHours <= 0) return;
        var dueBefore = (Time.GetUtcNow() - TimeSpan.FromHours(fleet.VolumeScrubHours)).UtcTicks;
        await using var session = store.QuerySession();
        var due = await session.Query<VolumeView>()
            .Where(v => v.ScrubFromTicks <= dueBefore && (v.State == VolumeState.Healthy || v.State == VolumeState.Degraded))
            .Select(v => v.Id).ToListAsync(ct);
        var bus = new MessageBus(runtime);
        foreach (var id in due) await bus.PublishAsync(new ScrubVolumeIfDue(id));
    }
}

public static class ScrubVolumeIfDueHandler
{
    private static readonly Principal Round = Principal.System("volume-scrub");

    public static Task Handle(ScrubVolumeIfDue due, IDocumentSession session, IMessageContext context, FleetOptions fleet, TimeProvider time) =>
        VolumeStreams.ExecuteAsync(session, context, new ScrubVolume(due.VolumeId, Round, time.GetUtcNow(), TimeSpan.FromHours(fleet.VolumeScrubHours)), Round);
}
