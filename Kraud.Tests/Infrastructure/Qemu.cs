using System.Text;
using System.Text.RegularExpressions;
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
        Require("qemu-storage-daemon", "qemu-system-common");
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

    /// <summary>Waits until the VM's workload wrote <paramref name="text"/> (its log on the host); the log and the console tell why not.</summary>
    public static async Task<string> WaitForWorkloadLogAsync(QemuMicroVmDriver driver, Guid vmId, string text, int seconds = 90)
    {
        var path = driver.WorkloadLogOf(vmId);
        try
        {
            await Eventually.Until(async () => File.Exists(path) && (await File.ReadAllTextAsync(path)).Contains(text), TimeSpan.FromSeconds(seconds),
                $"the workload log shows '{text}'");
        }
        catch (TimeoutException e)
        {
            var log = File.Exists(path) ? await File.ReadAllTextAsync(path) : "(none)";
            var console = File.Exists(driver.ConsoleLogOf(vmId)) ? await File.ReadAllTextAsync(driver.ConsoleLogOf(vmId)) : "(none)";
            throw new TimeoutException($"{e.Message}\nworkload log:\n{log}\nconsole:\n{console}", e);
        }
        return await File.ReadAllTextAsync(path);
    }

    /// <summary>The guest's view of the disk, read on the host through QEMU's own LUKS driver with the VM's key.</summary>
    public static async Task<string> DecryptedPrefixAsync(string image, string base64Key, int length)
    {
        var keyFile = Path.Combine(Path.GetTempPath(), $"kraud-test-key-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(keyFile, "");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await File.WriteAllTextAsync(keyFile, base64Key);
        try
        {
            var result = await ProcessRunner.RunAsync("qemu-io",
                [
                    "-r", "-U", "--object", $"secret,id=k,file={keyFile}",
                    "--image-opts", $"driver=luks,key-secret=k,file.driver=file,file.filename={image}", "-c", "read -v 0 512",
                ], TimeSpan.FromSeconds(30), CancellationToken.None);
            Assert.True(result.ExitCode == 0, $"qemu-io failed: {result.Error}");
            var bytes = Regex.Matches(result.Output, @"^[0-9a-f]{8}:\s+(?<hex>(?:[0-9a-f]{2} ){15}[0-9a-f]{2})", RegexOptions.Multiline | RegexOptions.ExplicitCapture,
                    TimeSpan.FromSeconds(5))
                .SelectMany(m => m.Groups["hex"].Value.Split(' ').Select(h => Convert.ToByte(h, 16))).ToArray();
            return Encoding.ASCII.GetString(bytes, 0, Math.Min(length, bytes.Length));
        }
        finally
        {
            File.Delete(keyFile);
        }
    }

    /// <summary>Live QEMU processes of one VM, found by the name the driver gives them (-name kraud-&lt;vm id&gt;).</summary>
    public static IReadOnlyList<int> QemuProcessesOf(Guid vmId)
    {
        var found = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid)) continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.Contains($"\0kraud-{vmId}\0") && ProcessExit.IsAlive(pid)) found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    private static void Require(string program, string package)
    {
        if (OnPath(program) is null) throw new InvalidOperationException($"{program} is missing: these tests boot real microVMs. apt-get install {package} (or run .ci/run).");
    }

    public static string? OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

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
