using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kraud.Cli.Infrastructure;

public sealed record CliContext(string Url, string Token);

/// <summary>
/// Contexts (a Kraud URL and a token each) in $XDG_CONFIG_HOME/kraud/config.json, else ~/.config/kraud/config.json,
/// written with mode 0600 because it holds tokens. KRAUD_URL and KRAUD_TOKEN override the current context.
/// </summary>
public sealed class CliConfig
{
    public string? Current { get; set; }
    public SortedDictionary<string, CliContext> Contexts { get; set; } = new(StringComparer.Ordinal);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Path
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            var root = string.IsNullOrEmpty(xdg)
                ? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config")
                : xdg;
            return System.IO.Path.Combine(root, "kraud", "config.json");
        }
    }

    public static CliConfig Load()
    {
        if (!File.Exists(Path)) return new CliConfig();
        try
        {
            var loaded = JsonSerializer.Deserialize<CliConfig>(File.ReadAllText(Path), Json) ?? new CliConfig();
            loaded.Contexts = new SortedDictionary<string, CliContext>(loaded.Contexts, StringComparer.Ordinal);
            return loaded;
        }
        catch (JsonException e)
        {
            throw new CliException($"{Path} is not valid JSON ({e.Message}): fix it or run `kraud login` again after removing it.");
        }
    }

    public void Save()
    {
        var directory = System.IO.Path.GetDirectoryName(Path)!;
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(directory);
        else Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // Written beside and renamed: a crash never leaves half a file, and the token is never readable by others.
        var temporary = Path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temporary, options))
            JsonSerializer.Serialize(stream, this, Json);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temporary, Path, overwrite: true);
    }

    /// <summary>The context commands talk to: the environment's URL and token first, then the current context.</summary>
    public CliContext Resolve()
    {
        var url = Environment.GetEnvironmentVariable("KRAUD_URL");
        var token = Environment.GetEnvironmentVariable("KRAUD_TOKEN");
        Contexts.TryGetValue(Current ?? "", out var current);
        url = string.IsNullOrEmpty(url) ? current?.Url : url;
        token = string.IsNullOrEmpty(token) ? current?.Token : token;
        if (url is null || token is null)
            throw new CliException("Not logged in: run `kraud login --url URL --token TOKEN` (or set KRAUD_URL and KRAUD_TOKEN).");
        return new CliContext(url, token);
    }
}
