using Kraud.Domain.Volumes;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.Infrastructure;

/// <summary>A client of a replica's NBD export from outside Kraud (qemu-io), with or without a TLS-PSK identity.</summary>
public static class NbdProbe
{
    /// <summary>Reads the first sector of an export the way a compute host's QEMU would, with or without a TLS-PSK identity.</summary>
    public static async Task<bool> ReadAsync(ExportAddress export, string? identity, string? psk)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"kraud-psk-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var args = new List<string> { "-r" };
            var node = $"driver=nbd,server.type=inet,server.host={export.Address},server.port={export.Port},export={identity ?? "anyone"}";
            if (identity is not null)
            {
                await File.WriteAllTextAsync(Path.Combine(dir, "keys.psk"), $"{identity}:{psk}\n");
                args.AddRange(["--object", $"tls-creds-psk,id=t,endpoint=client,dir={dir},username={identity}"]);
                node += ",tls-creds=t";
            }
            args.AddRange(["--image-opts", node, "-c", "read 0 512"]);
            var result = await ProcessRunner.RunAsync("qemu-io", args, TimeSpan.FromSeconds(60), CancellationToken.None);
            return result.ExitCode == 0 && result.Output.Contains("read 512/512");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
