using System.Text.RegularExpressions;
using Kraud.Domain.Common;

namespace Kraud.Domain.Apps;

/// <summary>A launch's configuration once checked: plain values (kept in events) apart from secrets (never in an event).</summary>
public sealed record ResolvedConfig(IReadOnlyDictionary<string, string> Values, IReadOnlyDictionary<string, string> Secrets, IReadOnlyList<string> Generated);

public static partial class AppConfig
{
    [GeneratedRegex(@"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex HostName();

    public const int MinSecretLength = 12;

    /// <summary>
    /// Checks what the user set against the template's fields, fills in defaults, and generates secrets the user left out
    /// (<paramref name="generate"/> makes one of the given length). Unknown fields are refused, so a typo is not silently ignored.
    /// </summary>
    /// <param name="kept">Values a running app already has (an upgrade keeps them); secrets among them are only named, with no value.</param>
    public static ResolvedConfig Resolve(AppTemplate template, IReadOnlyDictionary<string, string?> given, IReadOnlyCollection<string> zones,
        Func<int, string> generate, IReadOnlyDictionary<string, string>? kept = null, IReadOnlySet<string>? keptSecrets = null)
    {
        foreach (var name in given.Keys.Where(n => template.Field(n) is null))
            throw DomainException.Validation($"config.{name} is not a setting of {template.Name} {template.Version} ({string.Join(", ", template.Config.Select(f => f.Name))}).");
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var secrets = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var generated = new List<string>();
        foreach (var f in template.Config)
        {
            var value = given.GetValueOrDefault(f.Name) ?? kept?.GetValueOrDefault(f.Name);
            if (f.Kind == ConfigKind.Secret)
            {
                if (value is null && keptSecrets?.Contains(f.Name) == true) continue; // the app has it already
                if (value is null)
                {
                    if (f.Length is not { } length) { if (f.Required) throw DomainException.Validation($"config.{f.Name} ({f.Label}) is required."); continue; }
                    value = generate(length);
                    generated.Add(f.Name);
                }
                else if (value.Length < MinSecretLength || value.Length > 256)
                    throw DomainException.Validation($"config.{f.Name} must be {MinSecretLength}-256 characters.");
                secrets[f.Name] = value;
                continue;
            }
            value ??= f.Default;
            if (value is null)
            {
                if (f.Required) throw DomainException.Validation($"config.{f.Name} ({f.Label}) is required.");
                continue;
            }
            Check(f, value, zones);
            values[f.Name] = value;
        }
        return new ResolvedConfig(values, secrets, generated);
    }

    private static void Check(ConfigField f, string value, IReadOnlyCollection<string> zones)
    {
        var field = $"config.{f.Name}";
        switch (f.Kind)
        {
            case ConfigKind.Text:
                if (value.Length > (f.Max ?? 200) || value.Any(char.IsControl))
                    throw DomainException.Validation($"{field} must be at most {f.Max ?? 200} characters without control characters.");
                break;
            case ConfigKind.Select:
                if (!f.Options.Contains(value)) throw DomainException.Validation($"{field} '{value}' is not one of {string.Join(", ", f.Options)}.");
                break;
            case ConfigKind.Zone:
                if (!zones.Contains(value)) throw DomainException.Validation($"{field} '{value}' is not a zone of this platform ({string.Join(", ", zones.Order())}).");
                break;
            case ConfigKind.VolumeSize:
                if (!int.TryParse(value, CultureInfo.InvariantCulture, out var size) || size < (f.Min ?? 1) || size > (f.Max ?? 16384))
                    throw DomainException.Validation($"{field} must be a size in GiB between {f.Min ?? 1} and {f.Max ?? 16384}, got '{value}'.");
                break;
            case ConfigKind.IngressHost:
                if (!HostName().IsMatch(value)) throw DomainException.Validation($"{field} '{value}' is not a host name (lowercase labels separated by dots, e.g. cloud.example.com).");
                break;
        }
    }
}
