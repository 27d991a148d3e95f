namespace Kraud.Api.Database;

/// <summary>The machine's PostgreSQL server binaries (initdb, pg_ctl): where they are and which major version they are.</summary>
public static class PostgresBinaries
{
    /// <summary>Debian and Ubuntu keep each major version's server binaries here, off PATH.</summary>
    public const string DebianRoot = "/usr/lib/postgresql";

    /// <summary>
    /// The directory holding initdb and pg_ctl: the first PATH entry that has both, else the highest
    /// /usr/lib/postgresql/&lt;N&gt;/bin (Debian and Ubuntu do not put the server binaries on PATH).
    /// </summary>
    public static string? Find()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var entry in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (HasServerTools(entry))
            {
                return RealToolDirectory(entry);
            }
        }

        if (!Directory.Exists(DebianRoot))
        {
            return null;
        }
        var versioned = Directory.EnumerateDirectories(DebianRoot)
            .Select(dir => (dir, version: ParseLeadingNumber(Path.GetFileName(dir))))
            .Where(x => x.version is not null)
            .OrderByDescending(x => x.version);
        foreach (var (dir, _) in versioned)
        {
            var bin = Path.Combine(dir, "bin");
            if (HasServerTools(bin))
            {
                return bin;
            }
        }
        return null;
    }

    public static async Task<string?> MajorVersionAsync(string binDirectory, CancellationToken ct)
    {
        // --version is answered before pg_ctl's refusal to run as root, so no privilege drop is needed.
        var result = await EmbeddedPostgres.RunAsync(Path.Combine(binDirectory, "pg_ctl"), ["--version"], TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        const string marker = "(PostgreSQL) ";
        var at = result.Output.IndexOf(marker, StringComparison.Ordinal);
        if (result.ExitCode != 0 || at < 0)
        {
            return null;
        }
        var version = new string(result.Output[(at + marker.Length)..].TakeWhile(c => char.IsAsciiDigit(c) || c == '.').ToArray());
        var parts = version.Split('.');
        // Before 10 the major version had two parts (9.6), and PG_VERSION says so too.
        return parts.Length >= 2 && parts[0].Length == 1 ? parts[0] + "." + parts[1] : parts[0];
    }

    public static bool HasServerTools(string directory)
    {
        var suffix = OperatingSystem.IsWindows() ? ".exe" : "";
        return File.Exists(Path.Combine(directory, "initdb" + suffix)) && File.Exists(Path.Combine(directory, "pg_ctl" + suffix));
    }

    // PATH often holds symlinks (e.g. /usr/local/bin/initdb); report where the binaries really live.
    private static string RealToolDirectory(string directory)
    {
        try
        {
            var target = new FileInfo(Path.Combine(directory, "initdb")).ResolveLinkTarget(returnFinalTarget: true);
            var targetDirectory = target is null ? null : Path.GetDirectoryName(target.FullName);
            return targetDirectory is not null && HasServerTools(targetDirectory) ? targetDirectory : Path.GetFullPath(directory);
        }
        catch (IOException)
        {
            return Path.GetFullPath(directory);
        }
    }

    private static int? ParseLeadingNumber(string? text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
}


/// <summary>Thrown when no PostgreSQL server binaries (initdb, pg_ctl) can be found on this machine.</summary>
public sealed class PostgresBinariesNotFoundException : Exception
{
    private const string DefaultMessage =
        "PostgreSQL server binaries (initdb and pg_ctl) were not found on PATH or under /usr/lib/postgresql/<version>/bin, " +
        "so Kraud cannot run its embedded database. Either install PostgreSQL (e.g. `apt-get install postgresql`), " +
        "or run `docker compose up` (docker-compose.yml in the repo) to get a database server, " +
        "or point Kraud at an existing server by setting a connection string via `ConnectionStrings:Kraud` " +
        "or the environment variable `KRAUD_DATABASE`.";

    public PostgresBinariesNotFoundException()
        : base(DefaultMessage)
    {
    }

    public PostgresBinariesNotFoundException(string message)
        : base(message)
    {
    }

    public PostgresBinariesNotFoundException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
