using Microsoft.Extensions.Logging;

namespace Kraud.Api.Database;

/// <summary>
/// Who the server runs as. PostgreSQL refuses to run as root, and containers and CI usually run as root: then every
/// tool runs as the postgres user (through runuser or setpriv), which must own the cluster's files and reach its directory.
/// </summary>
public sealed class PostgresUser
{
    public const string Name = "postgres";

    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ChownTimeout = TimeSpan.FromSeconds(90);

    private PostgresUser(string[]? prefix) => Prefix = prefix;

    /// <summary>The command prefix that drops from root to the postgres user; null when this process is not root.</summary>
    public string[]? Prefix { get; }

    public static async Task<PostgresUser> DetectAsync(CancellationToken ct) => new(await PrefixAsync(ct).ConfigureAwait(false));

    /// <summary>The file and arguments that run <paramref name="path"/> as the postgres user.</summary>
    public (string FileName, IReadOnlyList<string> Args) Command(string path, IReadOnlyList<string> args) =>
        Prefix is null ? (path, args) : (Prefix[0], [.. Prefix[1..], path, .. args]);

    // PostgreSQL refuses to run as root, and containers and CI usually run as root.
    private static async Task<string[]?> PrefixAsync(CancellationToken ct)
    {
        if (OperatingSystem.IsWindows() || !await IsRootAsync(ct).ConfigureAwait(false))
        {
            return null;
        }

        var uid = await EmbeddedPostgres.RunAsync("id", ["-u", Name], ShortTimeout, ct).ConfigureAwait(false);
        var gid = await EmbeddedPostgres.RunAsync("id", ["-g", Name], ShortTimeout, ct).ConfigureAwait(false);
        if (uid.ExitCode != 0 || gid.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"This process runs as root, which PostgreSQL refuses, and there is no '{Name}' user to run it as " +
                $"({uid.Error.Trim()}). Install PostgreSQL from the distribution (it creates that user), create it with " +
                $"`useradd --system --create-home {Name}`, or run Kraud as a non-root user.");
        }

        var runuser = FindExecutable("runuser");
        if (runuser is not null)
        {
            return [runuser, "-u", Name, "--"];
        }
        var setpriv = FindExecutable("setpriv");
        if (setpriv is not null)
        {
            return [setpriv, $"--reuid={uid.Output.Trim()}", $"--regid={gid.Output.Trim()}", "--init-groups", "--"];
        }
        throw new InvalidOperationException(
            $"This process runs as root, which PostgreSQL refuses, and neither runuser nor setpriv (util-linux) was found " +
            $"to run it as '{Name}'. Install util-linux or run Kraud as a non-root user.");
    }

    private static async Task<bool> IsRootAsync(CancellationToken ct)
    {
        if (Environment.UserName == "root")
        {
            return true;
        }
        try
        {
            var id = await EmbeddedPostgres.RunAsync("id", ["-u"], ShortTimeout, ct).ConfigureAwait(false);
            return id.ExitCode == 0 && id.Output.Trim() == "0";
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    // The server runs as postgres, so every directory above the data directory must be traversable by it.
    // Write access to the parent is not needed: we (root) create the data directory and the log file and
    // hand them over. A checkout under /root (mode 700) fails this, hence the fallback.
    public async Task<string> ReachableDataDirectoryAsync(string requested, ILogger? logger, CancellationToken ct)
    {
        if (Prefix is null) return requested;
        var parent = Path.GetDirectoryName(requested) ?? requested;
        var probe = NearestExistingDirectory(parent);
        var reachable = await PostgresCanTraverseAsync(probe, ct).ConfigureAwait(false);
        if (reachable && probe != parent)
        {
            // Directories we create inherit our umask, which may be 077.
            Directory.CreateDirectory(parent);
            reachable = await PostgresCanTraverseAsync(parent, ct).ConfigureAwait(false);
        }
        if (reachable)
        {
            return requested;
        }

        // Derived from the requested path so that the same checkout finds its data again next time.
        var fallback = Path.Combine("/var/tmp", "kraud-pg-" + EmbeddedPostgres.ShortHash(requested));
        logger?.LogWarning(
            "The {User} user cannot reach {Requested} (a parent directory such as {Probe} is not traversable by it, " +
            "e.g. a home directory with mode 700); using {Fallback} for the PostgreSQL data instead",
            Name, requested, probe, fallback);
        return fallback;
    }

    private async Task<bool> PostgresCanTraverseAsync(string directory, CancellationToken ct)
    {
        var result = await EmbeddedPostgres.RunAsync(Prefix![0], [.. Prefix[1..], "test", "-x", directory], ShortTimeout, ct)
            .ConfigureAwait(false);
        return result.ExitCode == 0;
    }

    public async Task ChownAsync(IReadOnlyList<string> paths, CancellationToken ct)
    {
        if (Prefix is null)
        {
            return;
        }
        var result = await EmbeddedPostgres.RunAsync("chown", ["-R", Name + ":", .. paths], ChownTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"Could not hand {string.Join(", ", paths)} to the {Name} user: {EmbeddedPostgres.Tail(result.Error)}");
        }
    }

    private static string? FindExecutable(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        // runuser lives in sbin, which is often not on a service's PATH.
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
    }

    private static string NearestExistingDirectory(string directory)
    {
        var current = directory;
        while (!Directory.Exists(current))
        {
            var parent = Path.GetDirectoryName(current);
            if (parent is null)
            {
                break;
            }
            current = parent;
        }
        return current;
    }
}
