using System.Text.RegularExpressions;
using Kraud.Domain.Common;

namespace Kraud.Domain.Apps;

public enum ConfigKind { Text, Select, Zone, Secret, VolumeSize, IngressHost }

/// <summary>A value the user sets at launch. Templates refer to it as {{ name }} in images, env, volume sizes and ingress hosts.</summary>
public sealed record ConfigField(
    string Name, ConfigKind Kind, string Label, bool Required, string? Default, IReadOnlyList<string> Options, int? Min, int? Max, int? Length,
    string? Description);

public sealed record VolumeMountTemplate(string Volume, string MountPath);

public sealed record ServiceTemplate(
    string Name, string Image, int Cpu, int MemoryMiB, int Replicas, IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Env,
    IReadOnlyList<VolumeMountTemplate> Volumes, int EphemeralGiB);

/// <param name="SizeGiB">A number or a {{ field }} of kind volumeSize.</param>
public sealed record VolumeTemplate(string Name, string Class, string SizeGiB);

/// <param name="Host">A host name or a {{ field }} of kind ingressHost.</param>
public sealed record IngressTemplate(string Host, string Path, string Service, int Port);

/// <summary>One version of an app in the catalog.</summary>
public sealed record AppTemplate(
    string Name, string Version, string DisplayName, string Description, string Changelog, IReadOnlyList<ConfigField> Config,
    IReadOnlyList<ServiceTemplate> Services, IReadOnlyList<VolumeTemplate> Volumes, IReadOnlyList<IngressTemplate> Ingresses)
{
    public ConfigField? Field(string name) => Config.FirstOrDefault(f => f.Name == name);
}

/// <summary>Checks a template as it is loaded, so a broken catalog file fails at start with the file's problem, not at launch.</summary>
public static partial class AppTemplates
{
    [GeneratedRegex(@"\{\{\s*(?<field>[a-zA-Z0-9_-]+)\s*\}\}", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    public static partial Regex Placeholder();

    public static readonly IReadOnlySet<string> VolumeClasses = new HashSet<string> { "BLOCK", "GFS", "RED" };

    public const int MaxVolumeNameLength = 20;

    public static AppTemplate Validate(AppTemplate t)
    {
        Names.RequireDnsLabel(t.Name, "name");
        if (!AppVersion.TryParse(t.Version, out _)) throw DomainException.Validation($"{t.Name}: version '{t.Version}' is not major.minor.patch.");
        Names.RequireText(t.DisplayName, $"{t.Name} {t.Version}: displayName");
        if (t.Services.Count == 0) throw DomainException.Validation($"{t.Name} {t.Version}: an app needs at least one service.");
        Unique(t.Config.Select(f => f.Name), $"{t.Name} {t.Version}: config field");
        Unique(t.Services.Select(s => s.Name), $"{t.Name} {t.Version}: service");
        Unique(t.Volumes.Select(v => v.Name), $"{t.Name} {t.Version}: volume");
        foreach (var f in t.Config)
        {
            Names.RequireDnsLabel(f.Name, $"{t.Name} {t.Version}: config field name");
            if (f.Kind == ConfigKind.Select && (f.Options.Count == 0 || (f.Default is { } d && !f.Options.Contains(d))))
                throw DomainException.Validation($"{t.Name} {t.Version}: select field '{f.Name}' needs options that include its default.");
        }
        foreach (var s in t.Services)
        {
            Names.RequireDnsLabel(s.Name, $"{t.Name} {t.Version}: service name");
            Names.RequireRange(s.Replicas, 1, 10, $"{t.Name} {t.Version}: {s.Name}.replicas");
            Names.RequireText(s.Image, $"{t.Name} {t.Version}: {s.Name}.image", 500);
            Names.RequireRange(s.Cpu, 1, 64, $"{t.Name} {t.Version}: {s.Name}.cpu");
            Names.RequireRange(s.MemoryMiB, 64, 256 * 1024, $"{t.Name} {t.Version}: {s.Name}.memoryMiB");
            foreach (var mount in s.Volumes.Where(m => t.Volumes.All(v => v.Name != m.Volume)))
                throw DomainException.Validation($"{t.Name} {t.Version}: service '{s.Name}' mounts unknown volume '{mount.Volume}'.");
            References(t, $"service '{s.Name}'", s.Env.Values.Append(s.Image).Concat(s.Command));
            // Secrets reach a guest through its environment only: an image name or a command line is shown to anyone who reads the pod.
            References(t, $"service '{s.Name}' image and command", s.Command.Append(s.Image), notKind: ConfigKind.Secret);
        }
        foreach (var v in t.Volumes)
        {
            Names.RequireDnsLabel(v.Name, $"{t.Name} {t.Version}: volume name");
            // The volume's own name adds the app's name and id to it (volume names are per tenant), within a DNS label.
            if (v.Name.Length > MaxVolumeNameLength)
                throw DomainException.Validation($"{t.Name} {t.Version}: volume name '{v.Name}' is longer than {MaxVolumeNameLength} characters.");
            var users = t.Services.Where(s => s.Volumes.Any(m => m.Volume == v.Name)).ToList();
            if (v.Class == "BLOCK" && (users.Count > 1 || users.Sum(s => s.Replicas) > 1))
                throw DomainException.Validation(
                    $"{t.Name} {t.Version}: BLOCK volume '{v.Name}' attaches to one microVM, and {string.Join(", ", users.Select(s => $"{s.Name} ({s.Replicas} replicas)"))} mount it: share data with GFS.");
            if (!VolumeClasses.Contains(v.Class)) throw DomainException.Validation($"{t.Name} {t.Version}: volume '{v.Name}' has class '{v.Class}', not BLOCK, GFS or RED.");
            References(t, $"volume '{v.Name}'", [v.SizeGiB], ConfigKind.VolumeSize);
        }
        foreach (var i in t.Ingresses)
        {
            if (t.Services.All(s => s.Name != i.Service)) throw DomainException.Validation($"{t.Name} {t.Version}: ingress routes to unknown service '{i.Service}'.");
            References(t, "ingress", [i.Host], ConfigKind.IngressHost);
        }
        return t;
    }

    private static void Unique(IEnumerable<string> names, string what)
    {
        if (names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } twice) throw DomainException.Validation($"{what} '{twice.Key}' is defined twice.");
    }

    private static void References(AppTemplate t, string where, IEnumerable<string> texts, ConfigKind? kind = null, ConfigKind? notKind = null)
    {
        foreach (Match m in texts.SelectMany(text => Placeholder().Matches(text)))
        {
            var field = t.Field(m.Groups["field"].Value) ?? throw DomainException.Validation($"{t.Name} {t.Version}: {where} uses unknown field '{m.Groups["field"].Value}'.");
            if (kind is { } k && field.Kind != k) throw DomainException.Validation($"{t.Name} {t.Version}: {where} needs a field of kind {k}, '{field.Name}' is {field.Kind}.");
            if (notKind is { } n && field.Kind == n) throw DomainException.Validation($"{t.Name} {t.Version}: {where} must not use the {n} field '{field.Name}'.");
        }
    }
}

/// <summary>major.minor.patch, compared numerically.</summary>
public readonly record struct AppVersion(int Major, int Minor, int Patch) : IComparable<AppVersion>
{
    public static bool TryParse(string text, out AppVersion version)
    {
        version = default;
        var parts = text.Split('.');
        if (parts.Length != 3 || !parts.All(p => p.Length is > 0 and < 6 && p.All(char.IsAsciiDigit))) return false;
        version = new AppVersion(int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture), int.Parse(parts[2], CultureInfo.InvariantCulture));
        return true;
    }

    public static AppVersion Parse(string text) => TryParse(text, out var v) ? v : throw DomainException.Validation($"version '{text}' is not major.minor.patch.");

    public int CompareTo(AppVersion other) => (Major, Minor, Patch).CompareTo((other.Major, other.Minor, other.Patch));

    public static bool operator >(AppVersion a, AppVersion b) => a.CompareTo(b) > 0;
    public static bool operator <(AppVersion a, AppVersion b) => a.CompareTo(b) < 0;
    public static bool operator >=(AppVersion a, AppVersion b) => a.CompareTo(b) >= 0;
    public static bool operator <=(AppVersion a, AppVersion b) => a.CompareTo(b) <= 0;

    public override string ToString() => $"{Major}.{Minor}.{Patch}";
}
