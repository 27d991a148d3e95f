using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Kraud.HostRuntime.Drivers.Qemu;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Kraud.Api.Database;

/// <summary>
/// A private PostgreSQL server run from the machine's own PostgreSQL binaries, so that Kraud and its
/// tests need no separately managed database. It listens on 127.0.0.1 only, on a port chosen at start.
/// Targets Linux (and macOS); on Windows use a real server and a connection string instead.
/// </summary>
public sealed class EmbeddedPostgres : IAsyncDisposable
{
    private const string Loopback = "127.0.0.1";
    private const string SuperUser = "kraud";
    private const int StartAttempts = 3;
    private const long MaxLogBytes = 10 * 1024 * 1024;

    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(30);
    // initdb with fsync on a slow disk can take a while; pg_ctl gets its own -t plus a margin
    // so that pg_ctl, not us, is the one that gives up and says why.
    private static readonly TimeSpan InitDbTimeout = TimeSpan.FromSeconds(180);
    private static readonly TimeSpan PgCtlTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);

    private ILogger? _logger;
    private readonly bool _durable;
    private readonly IReadOnlyDictionary<string, string> _serverSettings;
    private readonly Lock _stopGate = new();
    private PostgresUser _user = null!;
    private string _logFile = "";
    private string _socketDirectory = "";
    private int _postmasterPid;
    private Task? _stopTask;
    // Set when the connection string was promised before the start (Plan): every attempt binds this port.
    private int? _plannedPort;
    private string _plannedDirectory = "";
    private string _plannedDatabase = "";

    private EmbeddedPostgres(string binDirectory, ILogger? logger, bool durable, IReadOnlyDictionary<string, string>? serverSettings)
    {
        BinDirectory = binDirectory;
        _logger = logger;
        _durable = durable;
        _serverSettings = serverSettings ?? new Dictionary<string, string>();
    }

    public string ConnectionString { get; private set; } = "";

    public int Port { get; private set; }

    public string DataDirectory { get; private set; } = "";

    public string? BinDirectory { get; private set; }

    /// <summary>
    /// Creates the cluster in <paramref name="dataDirectory"/> on first use, else reuses it; starts it on
    /// 127.0.0.1 on a free port; waits until it accepts connections; ensures <paramref name="databaseName"/> exists.
    /// </summary>
    /// <param name="durable">false turns off fsync, synchronous_commit and full_page_writes: much faster,
    /// but a machine crash can corrupt the cluster. Meant for tests.</param>
    /// <param name="serverSettings">Further server settings (-c name=value), e.g. the benchmark's pg_stat_statements.</param>
    public static async Task<EmbeddedPostgres> StartAsync(
        string dataDirectory,
        string databaseName = "kraud",
        ILogger? logger = null,
        bool durable = true,
        CancellationToken ct = default,
        IReadOnlyDictionary<string, string>? serverSettings = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        ArgumentException.ThrowIfNullOrWhiteSpace(databaseName);
        var binDirectory = PostgresBinaries.Find() ?? throw new PostgresBinariesNotFoundException();

        var pg = new EmbeddedPostgres(binDirectory, logger, durable, serverSettings);
        try
        {
            await pg.StartCoreAsync(Path.GetFullPath(dataDirectory), databaseName, ct).ConfigureAwait(false);
            return pg;
        }
        catch when (pg._postmasterPid != 0)
        {
            // The caller never gets the instance, so nobody else could stop this server.
            try
            {
                await pg.StopAsync().ConfigureAwait(false);
            }
            catch (Exception stopError)
            {
                logger?.LogWarning(stopError, "Could not stop PostgreSQL after a failed start in {DataDirectory}", pg.DataDirectory);
            }
            throw;
        }
    }

    /// <summary>
    /// A server to start later (<see cref="StartPlannedAsync"/>) whose connection string is known now: Kraud.Api registers
    /// its services with it and starts the server from a hosted service. The port is free now; if something takes it
    /// before the start, the start says so.
    /// </summary>
    public static EmbeddedPostgres Plan(string dataDirectory, string databaseName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        ArgumentException.ThrowIfNullOrWhiteSpace(databaseName);
        var binDirectory = PostgresBinaries.Find() ?? throw new PostgresBinariesNotFoundException();
        var pg = new EmbeddedPostgres(binDirectory, logger: null, durable: true, serverSettings: null)
        {
            _plannedPort = GetFreePort(),
            _plannedDirectory = Path.GetFullPath(dataDirectory),
            _plannedDatabase = databaseName,
        };
        pg.Port = pg._plannedPort.Value;
        pg.DataDirectory = pg._plannedDirectory;
        pg.ConnectionString = ConnectionStringFor(pg.Port, databaseName);
        return pg;
    }

    /// <summary>The host's logger, once there is one (a planned server is made before the host's services exist).</summary>
    public void UseLogger(ILogger logger) => _logger = logger;

    /// <summary>Starts a server made by <see cref="Plan"/> (creating the cluster on first use, else reusing it).</summary>
    public async Task StartPlannedAsync(CancellationToken ct)
    {
        if (_plannedPort is null) throw new InvalidOperationException("Only a planned server starts this way; use StartAsync.");
        try
        {
            await StartCoreAsync(_plannedDirectory, _plannedDatabase, ct).ConfigureAwait(false);
        }
        catch when (_postmasterPid != 0)
        {
            await StopAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static string ConnectionStringFor(int port, string databaseName) => new NpgsqlConnectionStringBuilder
    {
        Host = Loopback,
        Port = port,
        Username = SuperUser,
        Database = databaseName,
    }.ConnectionString;

    /// <summary>Stops the server (pg_ctl stop -m fast, then -m immediate). Safe to call more than once.</summary>
    public Task StopAsync()
    {
        lock (_stopGate)
        {
            // A failed stop may be retried; a successful or running one is shared.
            if (_stopTask is null || _stopTask.IsFaulted || _stopTask.IsCanceled)
            {
                _stopTask = StopCoreAsync();
            }
            return _stopTask;
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    private async Task StartCoreAsync(string requestedDirectory, string databaseName, CancellationToken ct)
    {
        _user = await PostgresUser.DetectAsync(ct).ConfigureAwait(false);
        DataDirectory = await _user.ReachableDataDirectoryAsync(requestedDirectory, _logger, ct).ConfigureAwait(false);
        // Next to the data directory rather than inside it, so that initdb gets an empty directory
        // and wiping a broken cluster does not lose the log that says what broke it.
        _logFile = DataDirectory + ".log";
        _socketDirectory = ChooseSocketDirectory(DataDirectory);
        Directory.CreateDirectory(Path.GetDirectoryName(DataDirectory) ?? DataDirectory);

        var existed = File.Exists(Path.Combine(DataDirectory, "PG_VERSION"));
        if (!existed)
        {
            await InitializeClusterAsync(ct).ConfigureAwait(false);
        }
        await PrepareFilesAsync(ct).ConfigureAwait(false);
        if (existed)
        {
            await EnsureBinariesMatchClusterAsync(ct).ConfigureAwait(false);
            await ClearStaleServerAsync(ct).ConfigureAwait(false);
        }
        await StartServerAsync(ct).ConfigureAwait(false);
        var version = await EnsureDatabaseAsync(databaseName, ct).ConfigureAwait(false);

        ConnectionString = ConnectionStringFor(Port, databaseName);
        _logger?.LogInformation("PostgreSQL {Version} started on {Host}:{Port} (data: {DataDirectory})",
            version, Loopback, Port, DataDirectory);
    }

    // A Unix socket path must fit in sun_path (108 bytes); a deep data directory would make the server refuse to start.
    private static string ChooseSocketDirectory(string dataDirectory)
    {
        if (OperatingSystem.IsWindows() || Encoding.UTF8.GetByteCount(dataDirectory + "/.s.PGSQL.65535") < 100)
        {
            return dataDirectory;
        }
        return "/tmp/kraud-pg-" + ShortHash(dataDirectory) + ".s";
    }

    private async Task InitializeClusterAsync(CancellationToken ct)
    {
        if (Directory.Exists(DataDirectory) && Directory.EnumerateFileSystemEntries(DataDirectory).Any())
        {
            var foreign = Directory.EnumerateFileSystemEntries(DataDirectory)
                .Select(Path.GetFileName)
                .Where(name => !LooksLikeClusterEntry(name))
                .ToList();
            if (foreign.Count > 0)
            {
                // Wiping is only safe for what initdb left behind; the path might be a mistake.
                throw new InvalidOperationException(
                    $"{DataDirectory} is not empty and does not look like a PostgreSQL data directory " +
                    $"(it contains {string.Join(", ", foreign.Take(5))}); refusing to delete it. Use another directory or empty it.");
            }
            _logger?.LogWarning(
                "{DataDirectory} holds an unfinished PostgreSQL cluster (no PG_VERSION), probably from an interrupted initdb; wiping it",
                DataDirectory);
            Directory.Delete(DataDirectory, recursive: true);
        }

        // initdb works in a sibling directory that is renamed into place only when it succeeded, so a killed
        // initdb can never leave something that looks like a finished cluster (PG_VERSION is written early).
        var staging = DataDirectory + ".initdb";
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        CreatePrivateDirectory(staging);
        await _user.ChownAsync([staging], ct).ConfigureAwait(false);

        _logger?.LogInformation("Initializing a PostgreSQL cluster in {DataDirectory}", DataDirectory);
        // Trust (no password) is tolerable only because the server listens on loopback alone and its socket
        // directory is private; any local user can still connect over 127.0.0.1, so this is for developer and
        // CI machines, not shared hosts. Locale C keeps sorting identical on every machine.
        List<string> args = ["-D", staging, "-U", SuperUser, "--auth=trust", "-E", "UTF8", "--locale=C"];
        if (!_durable)
        {
            args.Add("--no-sync");
        }
        var result = await RunPgToolAsync("initdb", args, InitDbTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"initdb failed for {DataDirectory} (exit code {result.ExitCode}): {Tail(result.Error)}{Environment.NewLine}{Tail(result.Output)}");
        }

        if (Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory); // empty by now; non-recursive on purpose
        }
        Directory.Move(staging, DataDirectory);
    }

    private async Task PrepareFilesAsync(CancellationToken ct)
    {
        var log = new FileInfo(_logFile);
        if (log.Exists && log.Length > MaxLogBytes)
        {
            // The log is appended to by every run; keep one previous generation instead of letting it grow forever.
            File.Move(_logFile, _logFile + ".1", overwrite: true);
        }
        if (!File.Exists(_logFile))
        {
            File.WriteAllBytes(_logFile, []);
        }
        if (_socketDirectory != DataDirectory)
        {
            CreatePrivateDirectory(_socketDirectory);
        }

        // The data directory must be owned by the user the server runs as; a previous run as another user,
        // or a copy made by root, would otherwise stop the server from starting.
        List<string> owned = [DataDirectory, _logFile];
        if (_socketDirectory != DataDirectory)
        {
            owned.Add(_socketDirectory);
        }
        await _user.ChownAsync(owned, ct).ConfigureAwait(false);
    }

    // A cluster is tied to its major version; starting it with other binaries fails with a cryptic log line.
    private async Task EnsureBinariesMatchClusterAsync(CancellationToken ct)
    {
        var clusterVersion = File.ReadAllText(Path.Combine(DataDirectory, "PG_VERSION")).Trim();
        var binVersion = await PostgresBinaries.MajorVersionAsync(BinDirectory!, ct).ConfigureAwait(false);
        if (binVersion is null || binVersion == clusterVersion)
        {
            return;
        }

        var matching = Path.Combine(PostgresBinaries.DebianRoot, clusterVersion, "bin");
        if (PostgresBinaries.HasServerTools(matching))
        {
            _logger?.LogInformation(
                "{DataDirectory} was created by PostgreSQL {ClusterVersion}; using {Matching} instead of the PostgreSQL {BinVersion} in {BinDirectory}",
                DataDirectory, clusterVersion, matching, binVersion, BinDirectory);
            BinDirectory = matching;
            return;
        }
        throw new InvalidOperationException(
            $"{DataDirectory} was created by PostgreSQL {clusterVersion}, but the binaries in {BinDirectory} are PostgreSQL {binVersion}. " +
            $"Install PostgreSQL {clusterVersion} alongside, or delete {DataDirectory} (its data is lost) to start afresh.");
    }

    // A previous run that was killed leaves postmaster.pid behind, and one that never stopped leaves the server running.
    private async Task ClearStaleServerAsync(CancellationToken ct)
    {
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        if (File.Exists(pidFile))
        {
            var pid = ReadPostmasterPid(pidFile);
            var status = await RunPgToolAsync("pg_ctl", ["status", "-D", DataDirectory], ShortTimeout, ct).ConfigureAwait(false);
            // pg_ctl status only checks that the PID is alive; after a reboot or in a container the PID is often
            // reused by something else (or is an unreaped zombie), and stopping that would be wrong.
            var running = status.ExitCode == 0 && pid > 0 && IsPostmasterOf(pid, pidFile) != false;
            if (running)
            {
                _logger?.LogWarning(
                    "A PostgreSQL server (PID {Pid}) is still running from {DataDirectory}, left by an earlier start that was not stopped; stopping it",
                    pid, DataDirectory);
                var stop = await StopServerAsync(ct).ConfigureAwait(false);
                if (stop is not null)
                {
                    throw new InvalidOperationException(
                        $"A PostgreSQL server (PID {pid}) is still running from {DataDirectory} and could not be stopped: {stop}");
                }
            }
            else
            {
                _logger?.LogInformation("Removing stale postmaster.pid (PID {Pid} is not a running server) from {DataDirectory}", pid, DataDirectory);
                File.Delete(pidFile);
            }
        }

        // Sockets of a server that died are never removed, and each run picks a new port.
        foreach (var stale in Directory.EnumerateFiles(_socketDirectory, ".s.PGSQL.*"))
        {
            File.Delete(stale);
        }
    }

    // true/false when /proc tells, null when it cannot (no procfs, or another user's process).
    private static bool? IsPostmasterOf(int pid, string pidFile)
    {
        if (!Directory.Exists("/proc/self"))
        {
            return null;
        }
        try
        {
            // A postmaster's working directory is its data directory; reading the lock file through it
            // avoids comparing paths that may differ by symlinks.
            var seen = File.ReadAllText($"/proc/{pid}/cwd/postmaster.pid");
            return seen == File.ReadAllText(pidFile);
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private async Task StartServerAsync(CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            // Another process may take the port between our probe and the server's bind; that is why we retry (on the
            // same port when it was promised in a connection string already).
            var port = _plannedPort ?? GetFreePort();
            var logOffset = File.Exists(_logFile) ? new FileInfo(_logFile).Length : 0;
            var options = $"-p {port} -h {Loopback} -k {ShellQuote(_socketDirectory)} -c max_connections=200";
            if (!_durable)
            {
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
            }
            foreach (var (name, value) in _serverSettings)
            {
                options += $" -c {name}={ShellQuote(value)}";
            }

            _logger?.LogDebug("Starting PostgreSQL from {DataDirectory} on port {Port} (attempt {Attempt})", DataDirectory, port, attempt);
            var result = await RunPgToolAsync("pg_ctl",
                ["start", "-D", DataDirectory, "-w", "-t", "60", "-l", _logFile, "-o", options], PgCtlTimeout, ct).ConfigureAwait(false);
            if (result.ExitCode == 0)
            {
                Port = port;
                _postmasterPid = ReadPostmasterPid(Path.Combine(DataDirectory, "postmaster.pid"));
                return;
            }

            var log = ReadLogSince(logOffset);
            await AbandonFailedStartAsync(ct).ConfigureAwait(false);
            // Port races, and children of a killed postmaster that have not noticed yet (they still hold its
            // shared memory), both clear up by themselves.
            var transientReason = log.Split('\n', StringSplitOptions.TrimEntries).FirstOrDefault(line =>
                line.Contains("could not bind", StringComparison.Ordinal)
                || line.Contains("Address already in use", StringComparison.Ordinal)
                || line.Contains("is still in use", StringComparison.Ordinal));
            if (transientReason is null || attempt >= StartAttempts)
            {
                throw new InvalidOperationException(
                    $"PostgreSQL failed to start from {DataDirectory} on {Loopback}:{port} (pg_ctl exit code {result.ExitCode}: " +
                    $"{Tail(result.Error).Trim()}).{Environment.NewLine}Server log {_logFile}:{Environment.NewLine}{log}");
            }
            _logger?.LogWarning("PostgreSQL could not start on port {Port} ({Reason}); retrying", port, transientReason);
            await Task.Delay(TimeSpan.FromMilliseconds(500 * attempt), ct).ConfigureAwait(false);
        }
    }

    // pg_ctl gives up after -t but leaves a slow server running; it would hold the directory for the next try.
    private async Task AbandonFailedStartAsync(CancellationToken ct)
    {
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        if (File.Exists(pidFile) && IsPostmasterOf(ReadPostmasterPid(pidFile), pidFile) != false)
        {
            await RunPgToolAsync("pg_ctl", ["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", "30"], PgCtlTimeout, ct)
                .ConfigureAwait(false);
        }
    }

    private async Task<string> EnsureDatabaseAsync(string databaseName, CancellationToken ct)
    {
        var admin = new NpgsqlConnectionStringBuilder
        {
            Host = Loopback,
            Port = Port,
            Username = SuperUser,
            Database = "postgres",
            Pooling = false,
            Timeout = 10,
        }.ConnectionString;
        await using var connection = await OpenWithRetryAsync(admin, ct).ConfigureAwait(false);

        bool exists;
        await using (var query = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection))
        {
            query.Parameters.Add(new NpgsqlParameter { Value = databaseName });
            exists = await query.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null;
        }
        if (!exists)
        {
            var quoted = "\"" + databaseName.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
            await using var create = new NpgsqlCommand($"CREATE DATABASE {quoted}", connection);
            try
            {
                await create.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                _logger?.LogInformation("Created database {Database}", databaseName);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateDatabase)
            {
                // Someone else created it between our check and CREATE; that is what we wanted.
            }
        }
        return connection.PostgreSqlVersion.Major.ToString(CultureInfo.InvariantCulture);
    }

    // pg_ctl -w returns once the server says it is ready, but a just-started server can still refuse
    // briefly (e.g. "the database system is starting up"); don't fail the whole start on that.
    private static async Task<NpgsqlConnection> OpenWithRetryAsync(string connectionString, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + ConnectTimeout;
        while (true)
        {
            var connection = new NpgsqlConnection(connectionString);
            try
            {
                await connection.OpenAsync(ct).ConfigureAwait(false);
                return connection;
            }
            catch (NpgsqlException) when (DateTime.UtcNow < deadline)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                await Task.Delay(250, ct).ConfigureAwait(false);
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    private async Task StopCoreAsync()
    {
        if (_postmasterPid == 0)
        {
            return;
        }
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        // Another instance may have taken the directory over since (it stops our server and starts its own);
        // pg_ctl stop works on the directory, so it would stop theirs.
        var current = File.Exists(pidFile) ? ReadPostmasterPid(pidFile) : 0;
        if (current != _postmasterPid)
        {
            _logger?.LogDebug("PostgreSQL (PID {Pid}) from {DataDirectory} is already gone", _postmasterPid, DataDirectory);
            return;
        }

        var error = await StopServerAsync(CancellationToken.None).ConfigureAwait(false);
        if (error is not null)
        {
            throw new InvalidOperationException($"Could not stop PostgreSQL (PID {_postmasterPid}) from {DataDirectory}: {error}");
        }
        _logger?.LogInformation("PostgreSQL on {Host}:{Port} stopped (data: {DataDirectory})", Loopback, Port, DataDirectory);
    }

    // Returns null on success, else what went wrong.
    private async Task<string?> StopServerAsync(CancellationToken ct)
    {
        var fast = await RunPgToolAsync("pg_ctl", ["stop", "-D", DataDirectory, "-m", "fast", "-w", "-t", "60"], PgCtlTimeout, ct)
            .ConfigureAwait(false);
        if (fast.ExitCode == 0)
        {
            return null;
        }
        // Immediate skips the shutdown checkpoint; the next start recovers from WAL, which is safe.
        _logger?.LogWarning("pg_ctl stop -m fast failed for {DataDirectory} ({Error}); using -m immediate", DataDirectory, fast.Error.Trim());
        var immediate = await RunPgToolAsync("pg_ctl", ["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", "30"], PgCtlTimeout, ct)
            .ConfigureAwait(false);
        return immediate.ExitCode == 0 ? null : $"{Tail(fast.Error).Trim()} / {Tail(immediate.Error).Trim()}";
    }

    private Task<ProcessResult> RunPgToolAsync(string tool, IReadOnlyList<string> args, TimeSpan timeout, CancellationToken ct)
    {
        var path = Path.Combine(BinDirectory!, tool);
        var (fileName, arguments) = _user.Command(path, args);
        return RunAsync(fileName, arguments, timeout, ct, _logger);
    }

    /// <summary>How every PostgreSQL tool and helper command of the launcher runs (also for PostgresUser and PostgresBinaries).</summary>
    internal static Task<ProcessResult> RunAsync(
        string fileName, IReadOnlyList<string> args, TimeSpan timeout, CancellationToken ct, ILogger? logger = null)
    {
        logger?.LogDebug("Running {CommandLine}", string.Join(' ', args.Prepend(fileName)));
        // The postgres user may not be able to enter our working directory (e.g. /root), which makes initdb complain.
        // stdin is closed (CliWrap's default): an unexpected prompt is a failure, not a hang. pg_ctl start hands the
        // server -l's log file as its output, so no daemon keeps the pipes CliWrap reads to their end.
        return ProcessRunner.RunAsync(fileName, args, timeout, ct, workingDirectory: OperatingSystem.IsWindows() ? null : "/");
    }

    private string ReadLogSince(long offset)
    {
        try
        {
            using var stream = new FileStream(_logFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Max(offset, stream.Length - 8192), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            var text = reader.ReadToEnd().Trim();
            return text.Length > 0 ? text : "(nothing was logged)";
        }
        catch (IOException e)
        {
            return $"(could not read the log: {e.Message})";
        }
    }

    private static int ReadPostmasterPid(string pidFile)
    {
        try
        {
            using var reader = new StreamReader(pidFile);
            return int.TryParse(reader.ReadLine(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) ? pid : 0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static int GetFreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    private static bool LooksLikeClusterEntry(string? name) =>
        name is not null && (
            name.StartsWith("pg_", StringComparison.Ordinal)
            || name.StartsWith("PG_", StringComparison.Ordinal)
            || name.StartsWith(".s.PGSQL.", StringComparison.Ordinal)
            || name.StartsWith("postgresql.", StringComparison.Ordinal)
            || name.StartsWith("postmaster.", StringComparison.Ordinal)
            || name is "base" or "global" or "log" or "current_logfiles");

    private static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    internal static string ShortHash(string text) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..12];

    // pg_ctl hands -o to /bin/sh, so a socket path with spaces or quotes must be quoted for the shell.
    private static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    internal static string Tail(string text, int maxChars = 4000) =>
        text.Length <= maxChars ? text : "..." + text[^maxChars..];
}
