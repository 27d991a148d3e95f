using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Storage;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A replica whose disk fails reads with an I/O error (EIO) while its storage daemon stays up and its connections stay
/// open: QEMU's blkdebug driver, inserted in the daemon under one client's export, fails that client's reads; writes go
/// through to the file.
/// </summary>
public static class ReplicaReadErrors
{
    /// <summary>
    /// From now on the export of <paramref name="identity"/> fails every read that touches byte <paramref name="at"/> (or
    /// every read, when null). The client must not be connected yet: moving an export cuts its connections, another fault.
    /// </summary>
    public static async Task InjectAsync(BlockExports host, Guid volumeId, string identity, long? at = null)
    {
        var qmp = host.MonitorOf(volumeId);
        var node = $"eio-{Guid.NewGuid():N}"[..16];
        var rule = new Dictionary<string, object> { ["event"] = "read_aio", ["iotype"] = "read", ["errno"] = 5, ["once"] = false };
        if (at is { } offset) rule["sector"] = offset / 512;
        await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object>
        {
            ["driver"] = "raw", ["node-name"] = node,
            ["file"] = new Dictionary<string, object>
            {
                ["driver"] = "blkdebug", ["inject-error"] = new[] { rule },
                // The daemon's own node has the file open and locked: this second one over the same file shares its page cache.
                ["image"] = new Dictionary<string, object> { ["driver"] = "file", ["filename"] = host.ReplicaFileOf(volumeId), ["locking"] = "off" },
            },
        }, CancellationToken.None);
        await qmp.ExecuteAsync("block-export-del", new Dictionary<string, object> { ["id"] = identity, ["mode"] = "hard" }, CancellationToken.None);
        // The export is gone only once its BLOCK_EXPORT_DELETED came; until then its id is taken.
        await Eventually.Until(async () =>
        {
            try
            {
                await qmp.ExecuteAsync("block-export-add", new Dictionary<string, object>
                {
                    ["type"] = "nbd", ["id"] = identity, ["node-name"] = node, ["name"] = identity, ["writable"] = true,
                }, CancellationToken.None);
                return true;
            }
            catch (QmpException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10), $"the export of {identity} serves the failing disk");
    }
}
