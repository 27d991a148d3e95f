using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Storage;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A replica whose client loses its connection for a while, as on a network that drops it: the storage daemon deletes the
/// client's export (mode hard, which closes its connections) and serves it again, unchanged, after <c>away</c>. Until then
/// the client's reconnects fail at the NBD handshake; afterwards they succeed.
/// </summary>
public static class ReplicaConnections
{
    public static async Task CutAsync(BlockExports host, Guid volumeId, string identity, TimeSpan away)
    {
        var qmp = host.MonitorOf(volumeId);
        await qmp.ExecuteAsync("block-export-del", new Dictionary<string, object> { ["id"] = identity, ["mode"] = "hard" }, CancellationToken.None);
        await Task.Delay(away);
        // The export is gone only once its BLOCK_EXPORT_DELETED came; until then its id is taken.
        await Eventually.Until(async () =>
        {
            try
            {
                await qmp.ExecuteAsync("block-export-add", new Dictionary<string, object>
                {
                    ["type"] = "nbd", ["id"] = identity, ["node-name"] = "replica", ["name"] = identity, ["writable"] = true,
                }, CancellationToken.None);
                return true;
            }
            catch (QmpException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10), $"the export of {identity} is served again");
    }
}
