using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// What tests with real microVMs share: QEMU must be installed (CI installs it; a missing QEMU fails these tests with a
/// message, it never skips them), one guest image cached in the repository's .kraud/guest (also what .ci/run builds),
/// and a throwaway state directory. Guests are kept small: 1 vCPU, 256 MiB, 64 MiB disks, on a 2-core machine under TCG.
/// </summary>
public sealed class QemuFixture : IAsyncLifetime
{
    public string StateDirectory { get; } = Path.Combine(Path.GetTempPath(), $"kraud-qemu-{Guid.NewGuid():N}");

    public static string GuestDirectory => Path.Combine(RepositoryRoot(), ".kraud", "guest");

    public QemuOptions Options(string? stateDirectory = null) => new()
    {
        StateDirectory = stateDirectory ?? StateDirectory,
        GuestDirectory = GuestDirectory,
        MaxMemoryMiB = 256,
        MaxCpus = 1,
        MaxEphemeralMiB = 64,
        BootTimeoutSeconds = 90,
        StopTimeoutSeconds = 10,
    };

    public async Task InitializeAsync()
    {
        Require("qemu-system-x86_64", "qemu-system-x86");
        Require("qemu-img", "qemu-utils");
        Require("qemu-io", "qemu-utils");
        if (!File.Exists("/bin/busybox")) throw new InvalidOperationException("/bin/busybox is missing: apt-get install busybox-static (or run .ci/run).");
        Directory.CreateDirectory(StateDirectory);
        // Built once here (or found in the cache) so that no test pays for it inside its boot timeout.
        await new GuestImageBuilder(GuestDirectory).EnsureAsync(CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, recursive: true);
        return Task.CompletedTask;
    }

    public static MicroVmSpec Spec(int ephemeralGiB = 0, params string[] command) =>
        new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), 0, 0, "busybox", command, new Dictionary<string, string>(), 1, 256, ephemeralGiB, false);

    /// <summary>Live QEMU processes of one VM, found by the name the driver gives them (-name kraud-&lt;vm id&gt;).</summary>
    public static IReadOnlyList<int> QemuProcessesOf(Guid vmId)
    {
        var found = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.Contains($"\0kraud-{vmId}\0") && QemuMicroVmDriver.IsAlive(pid)) found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    private static void Require(string program, string package)
    {
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, program)));
        if (!onPath) throw new InvalidOperationException($"{program} is missing: these tests boot real microVMs. apt-get install {package} (or run .ci/run).");
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kraud.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Kraud.sln not found above the test assembly.");
    }
}

[CollectionDefinition(Name)]
public sealed class QemuCollection : ICollectionFixture<QemuFixture>
{
    public const string Name = "Real microVMs under QEMU";
}
