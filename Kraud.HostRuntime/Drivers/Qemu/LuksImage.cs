namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// A LUKS image made by qemu-img with a key handed over through a FIFO (<see cref="SecretPipe"/>). PBKDF stretching
/// (iter-time) only protects guessable passphrases; these keys are 256 random bits, so it is kept at 10 ms.
/// </summary>
public static class LuksImage
{
    /// <summary>How often a creation is tried when qemu-img misreads the cpu clock (see <see cref="CreateAsync"/>).</summary>
    public const int MaxAttempts = 12;

    /// <summary>
    /// qemu-img times a trial PBKDF run on the thread's cpu clock to size the stretching. The clock moves in scheduler
    /// ticks, so on a busy machine the run can measure 0 ms and qemu-img gives up ("Unable to get accurate CPU usage":
    /// 7 of 150 creations with both cores busy, up to 3 in a row in CI). Nothing is wrong with the image or the key: a
    /// new calibration does it, after a pause that lets a burst of load pass. Any other failure is returned at once.
    /// </summary>
    public static async Task<ProcessResult> CreateAsync(string qemuImg, string image, string size, byte[] secret, string pipe, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            SecretPipe.Create(pipe);
            var result = await ProcessRunner.RunAsync(qemuImg,
                ["create", "-q", "-f", "luks", "--object", $"secret,id=k,file={QemuOption.Value(pipe)}", "-o", "key-secret=k,iter-time=10", image, size],
                TimeSpan.FromSeconds(60), ct,
                whileRunning: exited => SecretPipe.FeedAsync(pipe, secret, exited, TimeSpan.FromSeconds(30)));
            if (result.ExitCode == 0 || attempt == MaxAttempts || !result.Error.Contains("Unable to get accurate CPU usage", StringComparison.Ordinal))
                return result;
            await Task.Delay(TimeSpan.FromMilliseconds(50 * attempt), ct);
        }
    }
}
