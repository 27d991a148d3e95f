using System.Security.Cryptography;

namespace Kraud.HostRuntime.Storage;

/// <summary>
/// A 256-bit key kept in a file of its own (base64, mode 0600), made at first use. Several processes of one machine may
/// start at once: the first to create the file wins, and the others read its key. In a real datacenter a KMS or HSM would
/// hand these keys out.
/// </summary>
public static class KeyFile
{
    public static byte[] LoadOrCreate(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        // Creating the file is the claim (O_EXCL: one process wins); the others read what the winner writes, waiting
        // while it is still half written. (File.Move without overwrite is not atomic on Linux: two racers both "won".)
        for (var attempt = 0; ; attempt++)
        {
            if (!File.Exists(path))
            {
                try
                {
                    var key = RandomNumberGenerator.GetBytes(32);
                    using (var file = new StreamWriter(new FileStream(path, options))) file.Write(Convert.ToBase64String(key));
                    return key;
                }
                catch (IOException) when (File.Exists(path))
                {
                    // Another process created it first.
                }
            }
            var text = File.ReadAllText(path).Trim();
            var existing = text.Length == 44 ? Convert.FromBase64String(text) : [];
            if (existing.Length == 32) return existing;
            if (attempt >= 200) throw new InvalidOperationException($"{path} does not hold a 256-bit key.");
            Thread.Sleep(10);
        }
    }
}
