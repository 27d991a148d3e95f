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
        if (File.Exists(path))
        {
            var existing = Convert.FromBase64String(File.ReadAllText(path).Trim());
            return existing.Length == 32 ? existing : throw new InvalidOperationException($"{path} does not hold a 256-bit key.");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var key = RandomNumberGenerator.GetBytes(32);
        // Written whole beside it, then moved into place: no process ever reads a half-written key.
        var temporary = $"{path}.{Guid.NewGuid():N}.new";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new StreamWriter(new FileStream(temporary, options))) file.Write(Convert.ToBase64String(key));
        try
        {
            File.Move(temporary, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(temporary);
            return LoadOrCreate(path);
        }
        return key;
    }
}
