using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.Infrastructure;

/// <summary>Removes a host runtime's state directory a spec made, with the QMP sockets of what ran in it (they live elsewhere).</summary>
public static class StateDirectories
{
    public static void Remove(string directory)
    {
        QmpClient.RemoveSocketsUnder(directory);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }
}
