using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.HostRuntime.Agents;

/// <summary>A storage host sets up its replica of a volume: with a data key it generates, or the one the volume has.</summary>
public static class ProvisionVolumeReplicaHandler
{
    public static async Task Handle(ProvisionVolumeReplica command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        if (agent.Replicas.Drops(command))
        {
            logger.LogWarning("Host {Host} drops the command to set up a replica of volume {VolumeId} (injected fault)", agent.Name, command.VolumeId);
            return;
        }
        var reports = Reports.For(runtime, context);
        try
        {
            if (agent.Exports is { } exports)
            {
                // Real storage: an empty replica, served; compute hosts write the LUKS header and the data through their own key.
                var export = await exports.ProvisionAsync(command.VolumeId, command.SizeGiB, ct);
                logger.LogInformation("Host {Host} serves a replica of volume {VolumeId} on {Address}:{Port}", agent.Name, command.VolumeId, export.Address, export.Port);
                await reports.PublishAsync(new ReplicaProvisioned(agent.Id, command.VolumeId, Encrypted: true, null, export));
                return;
            }
            var generated = await agent.Replicas.ProvisionAsync(command, ct);
            logger.LogInformation("Host {Host} holds a replica of volume {VolumeId}{Key}", agent.Name, command.VolumeId,
                generated is null ? "" : " and generated its data key");
            await reports.PublishAsync(new ReplicaProvisioned(agent.Id, command.VolumeId, Encrypted: true, generated));
        }
        catch (Exception e) when (e is ReplicaException or IOException or InvalidOperationException or TimeoutException or Drivers.Qemu.QmpException)
        {
            logger.LogWarning("Host {Host} could not set up a replica of volume {VolumeId}: {Reason}", agent.Name, command.VolumeId, e.Message);
            await reports.PublishAsync(new ReplicaProvisionFailed(agent.Id, command.VolumeId, e.Message));
        }
    }
}

/// <summary>Crypto-erase of a replica: reported also when the host held nothing, since the control plane waits for it.</summary>
public static class DestroyVolumeReplicaHandler
{
    public static async Task Handle(DestroyVolumeReplica command, HostAgents agents, IMessageContext context, IWolverineRuntime runtime,
        ILogger<HostAgent> logger)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        var held = agent.Exports is { } exports ? await exports.DestroyAsync(command.VolumeId) : agent.Replicas.Destroy(command.VolumeId);
        logger.LogInformation("Host {Host} erased its replica of volume {VolumeId}{Note}", agent.Name, command.VolumeId, held ? "" : " (held none)");
        await Reports.For(runtime, context).PublishAsync(new ReplicaDestroyed(agent.Id, command.VolumeId));
    }
}

/// <summary>A storage host admits one client to its replica of a volume (real storage only; simulated storage has no exports).</summary>
public static class GrantExportAccessHandler
{
    public static async Task Handle(GrantExportAccess command, HostAgents agents, ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        if (agent.Exports is not { } exports) return;
        await exports.GrantAsync(command.VolumeId, command.Access.Identity, command.Access.Psk, ct);
        logger.LogInformation("Host {Host} admits {Identity} to its replica of volume {VolumeId}", agent.Name, command.Access.Identity, command.VolumeId);
    }
}

public static class RevokeExportAccessHandler
{
    public static async Task Handle(RevokeExportAccess command, HostAgents agents, ILogger<HostAgent> logger, CancellationToken ct)
    {
        var agent = agents.Get(command.HostId).RequirePower();
        if (agent.Exports is not { } exports) return;
        await exports.RevokeAsync(command.VolumeId, command.Identity, ct);
        logger.LogInformation("Host {Host} no longer admits {Identity} to its replica of volume {VolumeId}", agent.Name, command.Identity, command.VolumeId);
    }
}
