using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Volumes;
using Kraud.Projections.KubernetesApi;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>A PersistentVolumeClaim's Kraud volume, kept until the volume is deleted after the claim.</summary>
public sealed class KubeClaimVolume
{
    /// <summary>The volume's id.</summary>
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public Guid ClusterId { get; set; }
    public Guid ClaimId { get; set; }
    public Guid ClaimUid { get; set; }
}

/// <summary>Delete the volume of a claim that is gone (crypto-erased, as every deleted volume).</summary>
public sealed record ReclaimClaimVolume(Guid VolumeId, DateTimeOffset At);

public static class ReclaimClaimVolumeHandler
{
    private static readonly Principal Reclaimer = Principal.System("volume-reclaimer");

    public static async Task Handle(ReclaimClaimVolume command, IDocumentSession session, IMessageContext context, IVolumes volumes)
    {
        var volume = (await Streams.LoadAsync<Volume>(session, command.VolumeId)).State;
        if (volume.Exists && !volume.Deleting) await volumes.ExecuteAsync(session, context, new DeleteVolume(command.VolumeId, Reclaimer, command.At), Reclaimer);
        session.Delete<KubeClaimVolume>(command.VolumeId);
    }
}

/// <summary>
/// The reclaim policy Delete: once a PersistentVolumeClaim is deleted (by kubectl, with its namespace or its cluster) and no
/// pod holds its volume any more (a Deployment's pods stop after it), the volume is deleted. Until then the volume refuses
/// (attached), and the next round tries again.
/// </summary>
public sealed class ClaimVolumeReclaimer(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<ClaimVolumeReclaimer> logger)
    : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(1);
    protected override string FailureMessage => "Reclaiming the volumes of deleted PersistentVolumeClaims failed this round";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var volumes = await session.Query<KubeClaimVolume>().ToListAsync(ct);
        if (volumes.Count == 0) return;
        var claims = (await session.LoadManyAsync<KubeObjectView>(ct, volumes.Select(v => v.ClaimId).Distinct().ToArray())).ToDictionary(v => v.Id);
        foreach (var volume in volumes.Where(v => !claims.TryGetValue(v.ClaimId, out var claim) || claim.Object.Uid != v.ClaimUid))
        {
            try
            {
                await new MessageBus(runtime).InvokeAsync(new ReclaimClaimVolume(volume.Id, Time.GetUtcNow()), ct);
            }
            catch (Exception e) when (Gql.ErrorCodes.Map(e) is not null)
            {
                // Still attached to a pod that is stopping: the next round tries again.
            }
        }
    }
}
