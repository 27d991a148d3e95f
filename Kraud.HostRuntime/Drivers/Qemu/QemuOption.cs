namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>A value inside one of QEMU's comma-separated option lists (a path, say): its commas are doubled, as QEMU reads them.</summary>
public static class QemuOption
{
    public static string Value(string value) => value.Replace(",", ",,");
}
