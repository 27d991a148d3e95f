using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Kraud.Api.Apps;

/// <summary>
/// The app catalog: versioned templates in YAML, one file per app version. Kraud's own (PostgreSQL, Redis, Nextcloud)
/// are embedded; Apps:CatalogDirectory adds every *.yaml/*.yml file of a directory. A broken file stops the start with
/// its name and problem, as a catalog that silently lost an app would be worse.
/// </summary>
public sealed class AppCatalog
{
    private readonly Dictionary<string, List<AppTemplate>> _apps;

    public AppCatalog(IEnumerable<AppTemplate> templates)
    {
        _apps = templates.GroupBy(t => t.Name).ToDictionary(g => g.Key, g => g.OrderBy(t => AppVersion.Parse(t.Version)).ToList());
        foreach (var (name, versions) in _apps)
            if (versions.GroupBy(v => v.Version).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new InvalidOperationException($"App catalog: {name} {twice.Key} is defined twice.");
    }

    /// <summary>Every app, each with its versions oldest first.</summary>
    public IReadOnlyList<IReadOnlyList<AppTemplate>> All => _apps.Values.OrderBy(v => v[0].Name, StringComparer.Ordinal).ToList();

    public AppTemplate Find(string app, string version) =>
        _apps.TryGetValue(app, out var versions)
            ? versions.FirstOrDefault(v => v.Version == version)
              ?? throw DomainException.NotFound($"Version of app {app} (offered: {string.Join(", ", versions.Select(v => v.Version))})", version)
            : throw DomainException.NotFound("App in the catalog", app);

    /// <summary>The changelog entries of every version after <paramref name="from"/> up to and including <paramref name="to"/>.</summary>
    public IReadOnlyList<ChangelogEntry> ChangelogBetween(string app, string from, string to) => _apps[app]
        .Where(v => AppVersion.Parse(v.Version) > AppVersion.Parse(from) && AppVersion.Parse(v.Version) <= AppVersion.Parse(to))
        .Select(v => new ChangelogEntry(v.Version, v.Changelog.Trim())).ToList();

    public static AppCatalog Load(IConfiguration configuration)
    {
        var templates = new List<AppTemplate>();
        var assembly = typeof(AppCatalog).Assembly;
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("Kraud.apps.", StringComparison.Ordinal)).Order())
        {
            using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
            templates.Add(Parse(reader.ReadToEnd(), resource));
        }
        if (configuration["Apps:CatalogDirectory"] is { Length: > 0 } directory)
        {
            if (!Directory.Exists(directory)) throw new InvalidOperationException($"Apps:CatalogDirectory {directory} does not exist.");
            foreach (var file in Directory.EnumerateFiles(directory).Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)).Order())
                templates.Add(Parse(File.ReadAllText(file), file));
        }
        return new AppCatalog(templates);
    }

    private static readonly IDeserializer Yaml = new DeserializerBuilder().WithNamingConvention(CamelCaseNamingConvention.Instance).Build();

    public static AppTemplate Parse(string yaml, string source)
    {
        try
        {
            var t = Yaml.Deserialize<TemplateFile>(yaml) ?? throw new InvalidOperationException("the file is empty");
            return AppTemplates.Validate(new AppTemplate(t.Name ?? "", t.Version ?? "", t.DisplayName ?? t.Name ?? "", t.Description ?? "", t.Changelog ?? "",
                t.Config.Select(f => new ConfigField(f.Name ?? "", Kind(f.Kind, f.Name), f.Label ?? f.Name ?? "", f.Required, f.Default, f.Options, f.Min, f.Max,
                    f.Length, f.Description)).ToList(),
                t.Services.Select(s => new ServiceTemplate(s.Name ?? "", s.Image ?? "", s.Cpu, s.MemoryMiB, s.Replicas, s.Command, s.Env,
                    s.Volumes.Select(v => new VolumeMountTemplate(v.Volume ?? "", v.MountPath ?? "")).ToList(), s.EphemeralGiB)).ToList(),
                t.Volumes.Select(v => new VolumeTemplate(v.Name ?? "", v.Class ?? "", v.SizeGiB ?? "")).ToList(),
                t.Ingress.Select(i => new IngressTemplate(i.Host ?? "", i.Path ?? "/", i.Service ?? "", i.Port)).ToList()));
        }
        catch (Exception e) when (e is YamlException or DomainException or InvalidOperationException)
        {
            throw new InvalidOperationException($"App catalog file {source}: {e.Message}", e);
        }
    }

    private static ConfigKind Kind(string? kind, string? field) =>
        Enum.TryParse<ConfigKind>(kind, ignoreCase: true, out var k) && Enum.IsDefined(k)
            ? k
            : throw new InvalidOperationException($"config field '{field}' has kind '{kind}', not one of text, select, zone, secret, volumeSize, ingressHost");

    // The file's shape, as YamlDotNet fills it.
    private sealed class TemplateFile
    {
        public string? Name { get; set; }
        public string? Version { get; set; }
        public string? DisplayName { get; set; }
        public string? Description { get; set; }
        public string? Changelog { get; set; }
        public List<FieldFile> Config { get; set; } = [];
        public List<ServiceFile> Services { get; set; } = [];
        public List<VolumeFile> Volumes { get; set; } = [];
        public List<IngressFile> Ingress { get; set; } = [];
    }

    private sealed class FieldFile
    {
        public string? Name { get; set; }
        public string? Kind { get; set; }
        public string? Label { get; set; }
        public string? Description { get; set; }
        public bool Required { get; set; }
        public string? Default { get; set; }
        public List<string> Options { get; set; } = [];
        public int? Min { get; set; }
        public int? Max { get; set; }
        public int? Length { get; set; }
    }

    private sealed class ServiceFile
    {
        public string? Name { get; set; }
        public string? Image { get; set; }
        public int Cpu { get; set; } = 1;
        public int MemoryMiB { get; set; } = 512;
        public int Replicas { get; set; } = 1;
        public int EphemeralGiB { get; set; }
        public List<string> Command { get; set; } = [];
        public Dictionary<string, string> Env { get; set; } = [];
        public List<MountFile> Volumes { get; set; } = [];
    }

    private sealed class MountFile
    {
        public string? Volume { get; set; }
        public string? MountPath { get; set; }
    }

    private sealed class VolumeFile
    {
        public string? Name { get; set; }
        public string? Class { get; set; }
        public string? SizeGiB { get; set; }
    }

    private sealed class IngressFile
    {
        public string? Host { get; set; }
        public string? Path { get; set; }
        public string? Service { get; set; }
        public int Port { get; set; }
    }
}
