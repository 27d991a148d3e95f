using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kraud.Domain.Common;

namespace Kraud.Cli.Compose;

public sealed record DesiredVolume(string Key, string Name, string Class, int SizeGiB, string? Zone);

public sealed record DesiredMount(string VolumeKey, string MountPath, bool ReadOnly);

public sealed record DesiredPod(string Name, string Image, IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Env, int Cpu,
    int MemoryMiB, int Replicas, IReadOnlyList<DesiredMount> Mounts);

public sealed record DesiredIngress(string Name, string Service, string Host, string Path, int Port);

/// <summary>
/// What a compose file asks Kraud for: each service a pod in the project's namespace, each named volume a volume
/// (`&lt;project&gt;-&lt;volume&gt;`), each service with `x-kraud.ingress.host` a MANAGED ingress (`&lt;project&gt;-&lt;service&gt;`).
/// Everything Kraud cannot honour is collected with its line and reason, and refused together before anything is made.
/// </summary>
public sealed partial class ComposeProject
{
    public const int DefaultCpu = 1;
    public const int DefaultMemoryMiB = 512;
    public const int DefaultVolumeGiB = 10;

    public string Name { get; }
    public IReadOnlyList<DesiredVolume> Volumes { get; }
    public IReadOnlyList<DesiredPod> Pods { get; }
    public IReadOnlyList<DesiredIngress> Ingresses { get; }

    /// <summary>What is read but not honoured (restart policies, health checks …): said, not refused.</summary>
    public IReadOnlyList<Refusal> Warnings { get; }

    private ComposeProject(string name, List<DesiredVolume> volumes, List<DesiredPod> pods, List<DesiredIngress> ingresses, List<Refusal> warnings)
    {
        Name = name;
        Volumes = volumes;
        Pods = pods;
        Ingresses = ingresses;
        Warnings = warnings;
    }

    // Keys Kraud reads, keys it ignores with a word, and keys it refuses: everything else in the schema is refused too,
    // so that nothing a user wrote is silently dropped.
    private static readonly HashSet<string> Honoured = ["image", "command", "entrypoint", "environment", "env_file", "deploy", "cpus", "mem_limit",
        "scale", "volumes", "ports", "expose"];

    private static readonly Dictionary<string, string> Ignored = new()
    {
        ["restart"] = "Kraud always replaces failed replicas",
        ["depends_on"] = "Kraud starts every service at once; a service waits for its dependencies itself",
        ["healthcheck"] = "Kraud watches the microVM, not a command inside it",
        ["container_name"] = "the pod is named after the service",
        ["hostname"] = "a pod's name resolves in its namespace",
        ["labels"] = "Kraud keeps no labels",
        ["logging"] = "Kraud keeps the workload's output itself",
        ["networks"] = "every service of a project shares the project's VPC namespace",
        ["stop_grace_period"] = "Kraud stops microVMs with its own timeout",
        ["stop_signal"] = "Kraud stops microVMs with its own signal",
        ["tty"] = "a microVM has a serial console, not a TTY",
        ["stdin_open"] = "a microVM has no standard input",
        ["init"] = "Kraud's own /init runs the command",
        ["pull_policy"] = "images are resolved by the host runtimes",
        ["platform"] = "every host runs linux/amd64",
        ["cap_add"] = "the command runs as root in its own microVM, with every capability of its own kernel",
        ["working_dir"] = "not honoured: the command runs from /",
        ["user"] = "not honoured: the command runs as root inside its microVM",
        ["mem_reservation"] = "Kraud reserves what a pod's limit says",
        ["shm_size"] = "not honoured",
        ["ulimits"] = "not honoured",
        ["sysctls"] = "not honoured",
        ["dns"] = "the namespace's resolver answers",
        ["dns_search"] = "the namespace's resolver answers",
        ["extra_hosts"] = "not honoured",
        ["domainname"] = "not honoured",
        ["profiles"] = "every service is started",
    };

    private static readonly Dictionary<string, string> Refused = new()
    {
        ["build"] = "Kraud runs images, it does not build them: push the image to a registry and name it in image:",
        ["privileged"] = "a pod is a microVM; Kraud gives no workload privileges on the host it runs on",
        ["network_mode"] = "every microVM has its own network in the project's VPC; it cannot share the host's or another's",
        ["pid"] = "a microVM has its own kernel: it cannot share the host's process namespace",
        ["ipc"] = "a microVM has its own kernel: it cannot share the host's IPC namespace",
        ["userns_mode"] = "a microVM has its own kernel: it cannot share the host's user namespace",
        ["devices"] = "Kraud passes no host devices into microVMs",
        ["device_cgroup_rules"] = "Kraud passes no host devices into microVMs",
        ["cap_drop"] = "Kraud cannot drop capabilities inside the microVM, so it cannot honour this restriction",
        ["security_opt"] = "Kraud cannot apply seccomp, AppArmor or SELinux profiles inside the microVM",
        ["secrets"] = "file secrets are not supported: pass them as environment",
        ["configs"] = "file configs are not supported: pass them as environment or bake them into the image",
        ["extends"] = "extends is not supported: write the service out",
        ["volumes_from"] = "microVMs do not share file systems with each other; use a GFS volume",
        ["links"] = "services find each other by name in the project's namespace",
        ["external_links"] = "services find each other by name in the project's namespace",
        ["tmpfs"] = "not supported: use ephemeral storage",
        ["cgroup_parent"] = "a microVM has no cgroup on the host to place",
        ["isolation"] = "every pod is isolated as a microVM",
        ["runtime"] = "every pod runs as a microVM",
        ["storage_opt"] = "not supported",
        ["oom_kill_disable"] = "not supported",
        ["oom_score_adj"] = "not supported",
        ["credential_spec"] = "not supported",
        ["blkio_config"] = "not supported",
        ["cpu_count"] = "give deploy.resources.limits.cpus",
        ["cpu_percent"] = "give deploy.resources.limits.cpus",
        ["cpu_shares"] = "give deploy.resources.limits.cpus",
        ["cpu_quota"] = "give deploy.resources.limits.cpus",
        ["cpu_period"] = "give deploy.resources.limits.cpus",
        ["cpu_rt_period"] = "not supported",
        ["cpu_rt_runtime"] = "not supported",
        ["cpuset"] = "Kraud does not pin vCPUs",
        ["memswap_limit"] = "microVMs have no swap",
        ["mem_swappiness"] = "microVMs have no swap",
        ["pids_limit"] = "not supported",
        ["group_add"] = "not supported",
        ["mac_address"] = "Kraud assigns addresses",
    };

    public static ComposeProject From(ComposeDocument doc, string? projectOverride, IReadOnlyDictionary<string, string?> variables)
    {
        var refusals = new List<Refusal>();
        var warnings = new List<Refusal>();
        void Refuse(string pointer, string reason) => refusals.Add(new Refusal(doc.Line(pointer), pointer, reason));
        void Warn(string pointer, string reason) => warnings.Add(new Refusal(doc.Line(pointer), pointer, reason));

        var name = projectOverride ?? (doc.Root["name"] as JsonValue)?.ToString() ?? ProjectNameOf(Path.GetDirectoryName(Path.GetFullPath(doc.Path))!);
        if (Label(name) is { } badName) Refuse(projectOverride is null && doc.Root["name"] is not null ? "/name" : "", $"project name: {badName}");

        foreach (var key in new[] { "secrets", "configs" })
            if (doc.Root[key] is JsonObject { Count: > 0 }) Refuse("/" + key, Refused[key]);
        if (doc.Root["networks"] is JsonObject { Count: > 0 }) Warn("/networks", Ignored["networks"]);

        var volumes = new List<DesiredVolume>();
        foreach (var (key, node) in doc.Root["volumes"] as JsonObject ?? [])
        {
            var p = ComposeDocument.Pointer("volumes", key);
            var spec = node as JsonObject ?? [];
            foreach (var bad in new[] { "driver", "driver_opts", "external", "labels", "name" })
                if (spec.ContainsKey(bad))
                    Refuse(p + "/" + bad, bad == "external"
                        ? "external volumes are not supported: let up create it, with x-kraud"
                        : "Kraud volumes are its own replicated, encrypted volumes: describe them with x-kraud (class, sizeGiB, zone)");
            var kraud = spec["x-kraud"] as JsonObject ?? [];
            var cls = (kraud["class"]?.ToString() ?? "BLOCK").ToUpperInvariant();
            if (cls is not ("BLOCK" or "GFS" or "RED")) Refuse(p + "/x-kraud/class", $"class {cls}: BLOCK, GFS or RED");
            var size = Int(kraud["sizeGiB"]) ?? DefaultVolumeGiB;
            var volumeName = $"{name}-{key}";
            if (Label(volumeName) is { } bad2) Refuse(p, $"volume name {bad2}");
            volumes.Add(new DesiredVolume(key, volumeName, cls, size, kraud["zone"]?.ToString()));
        }

        var pods = new List<DesiredPod>();
        var ingresses = new List<DesiredIngress>();
        var services = doc.Root["services"] as JsonObject ?? [];
        if (services.Count == 0) Refuse("", "no services: a compose file needs at least one under services:");
        foreach (var (service, node) in services)
        {
            var p = ComposeDocument.Pointer("services", service);
            var spec = node as JsonObject ?? [];
            if (Label(service) is { } badService) Refuse(p, $"service name {badService}");
            foreach (var (key, value) in spec)
            {
                if (key.StartsWith("x-", StringComparison.Ordinal) || Honoured.Contains(key)) continue;
                if (key == "privileged" && value is JsonValue v && v.TryGetValue<bool>(out var privileged) && !privileged) continue;
                if (key == "network_mode" && value?.ToString() == "bridge") continue;
                if (Refused.TryGetValue(key, out var why)) Refuse(p + "/" + key, why);
                else if (Ignored.TryGetValue(key, out var ignored)) Warn(p + "/" + key, $"ignored: {ignored}");
                else Refuse(p + "/" + key, "not supported by Kraud");
            }
            var image = spec["image"]?.ToString();
            if (string.IsNullOrWhiteSpace(image) && !spec.ContainsKey("build")) Refuse(p, "a service needs image:");

            var command = new List<string>();
            command.AddRange(Words(spec["entrypoint"], p + "/entrypoint", Refuse));
            command.AddRange(Words(spec["command"], p + "/command", Refuse));

            var env = Environment(doc, spec, p, variables, Refuse);

            var deploy = spec["deploy"] as JsonObject ?? [];
            foreach (var (key, value) in deploy)
            {
                if (key is "replicas" or "resources" || key.StartsWith("x-", StringComparison.Ordinal)) continue;
                if (key == "mode" && value?.ToString() == "replicated") continue;
                if (key is "restart_policy" or "update_config" or "rollback_config" or "labels" or "placement")
                    Warn(p + "/deploy/" + key, key == "placement" ? "ignored: Kraud places replicas itself (distinct hosts of one zone)" : "ignored: Kraud replaces failed replicas and updates pods itself");
                else Refuse(p + "/deploy/" + key, key == "mode" ? "global services (one per host) are not supported: give deploy.replicas" : $"deploy.{key} is not supported by Kraud");
            }
            if (deploy["resources"]?["reservations"] is not null)
                Warn(p + "/deploy/resources/reservations", "ignored: Kraud reserves what the limits say");
            var replicas = Int(deploy["replicas"]) ?? Int(spec["scale"]) ?? 1;
            var limits = deploy["resources"]?["limits"] as JsonObject ?? [];
            var cpus = Number(limits["cpus"]) ?? Number(spec["cpus"]);
            var cpu = cpus is { } c ? Math.Max(1, (int)Math.Ceiling(c)) : DefaultCpu;
            if (cpus is { } fractional && fractional != Math.Ceiling(fractional))
                Warn(p + "/deploy/resources/limits/cpus", $"a microVM gets whole vCPUs: {fractional.ToString(CultureInfo.InvariantCulture)} becomes {cpu}");
            var memoryText = limits["memory"]?.ToString() ?? spec["mem_limit"]?.ToString();
            var memory = DefaultMemoryMiB;
            if (memoryText is not null)
            {
                if (MiB(memoryText) is { } m) memory = m;
                else Refuse(p + (limits.ContainsKey("memory") ? "/deploy/resources/limits/memory" : "/mem_limit"), $"'{memoryText}' is not a size (e.g. 512M, 2G)");
            }

            var mounts = new List<DesiredMount>();
            var i = 0;
            foreach (var entry in spec["volumes"] as JsonArray ?? [])
            {
                var mp = $"{p}/volumes/{i++}";
                if (Mount(entry) is not var (type, source, target, readOnly)) { Refuse(mp, "a volume is VOLUME:/path[:ro] or {type: volume, source, target}"); continue; }
                if (type == "bind" || source is not null && (source.StartsWith('.') || source.StartsWith('/') || source.StartsWith('~')))
                    Refuse(mp, "bind mounts need the file system of the machine compose runs on; Kraud's microVMs run elsewhere: use a named volume");
                else if (type is not "volume") Refuse(mp, $"{type} mounts are not supported: use a named volume");
                else if (source is null) Refuse(mp, "anonymous volumes are not supported: name it under the top-level volumes:");
                else if (volumes.All(v => v.Key != source)) Refuse(mp, $"volume {source} is not declared under the top-level volumes:");
                else mounts.Add(new DesiredMount(source, target, readOnly));
            }

            var ingress = spec["x-kraud"]?["ingress"] as JsonObject;
            var ports = Ports(spec["ports"], p, Refuse);
            if (ingress is not null)
            {
                var host = ingress["host"]?.ToString();
                var chosen = Int(ingress["port"]) ?? (ports.Count == 1 ? ports[0] : null);
                if (string.IsNullOrEmpty(host)) Refuse(p + "/x-kraud/ingress", "x-kraud.ingress needs host:");
                else if (chosen is null)
                    Refuse(p + "/x-kraud/ingress", ports.Count == 0 ? "x-kraud.ingress publishes a port: add ports: or x-kraud.ingress.port"
                        : "several ports are published: say which one the ingress routes to with x-kraud.ingress.port");
                else ingresses.Add(new DesiredIngress($"{name}-{service}", service, host, ingress["path"]?.ToString() ?? "/", chosen.Value));
            }
            else if (ports.Count > 0)
                Warn(p + "/ports", "reachable inside the project's VPC only: add x-kraud.ingress.host to publish it through a managed ingress");

            if (image is not null) pods.Add(new DesiredPod(service, image, command, env, cpu, memory, replicas, mounts));
        }

        // BLOCK volumes are mounted by one microVM at a time: Kraud refuses anything else, so the plan does too.
        foreach (var v in volumes.Where(v => v.Class == "BLOCK"))
        {
            var users = pods.Where(pod => pod.Mounts.Any(m => m.VolumeKey == v.Key)).ToList();
            if (users.Count > 1)
                Refuse(ComposeDocument.Pointer("volumes", v.Key), $"BLOCK volume {v.Key} is mounted by {string.Join(" and ", users.Select(u => u.Name))}: a BLOCK volume serves one microVM; use x-kraud.class GFS to share it");
            else if (users is [{ Replicas: > 1 } only] && only.Mounts.Any(m => m.VolumeKey == v.Key && !m.ReadOnly))
                Refuse(ComposeDocument.Pointer("services", only.Name, "volumes"), $"{only.Name} has {only.Replicas} replicas and mounts BLOCK volume {v.Key} writable: a BLOCK volume serves one microVM; use x-kraud.class GFS");
        }

        if (refusals.Count > 0) throw new ComposeException(doc.Path, refusals);
        return new ComposeProject(name, volumes, pods, ingresses, warnings);
    }

    /// <summary>As Compose does: the directory's name, lower case, without what a project name may not hold.</summary>
    public static string ProjectNameOf(string directory) => NotInName().Replace(Path.GetFileName(directory).ToLowerInvariant(), "");

    [GeneratedRegex("[^a-z0-9-]", RegexOptions.None, 1000)]
    private static partial Regex NotInName();

    private static string? Label(string value)
    {
        try
        {
            Names.RequireDnsLabel(value, "");
            return null;
        }
        catch (DomainException e)
        {
            return e.Message.TrimStart();
        }
    }

    private static int? Int(JsonNode? node) => node is JsonValue v && (v.TryGetValue<long>(out var l) ? (int?)l : int.TryParse(v.ToString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i) ? i : null) is { } n ? n : null;

    private static double? Number(JsonNode? node) => node is JsonValue v
        ? v.TryGetValue<double>(out var d) ? d : v.TryGetValue<long>(out var l) ? l : double.TryParse(v.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var p) ? p : null
        : null;

    /// <summary>Compose sizes: a number of bytes, or a number with b, k, m, g (optionally followed by b).</summary>
    public static int? MiB(string text)
    {
        var m = SizePattern().Match(text.Trim().ToLowerInvariant());
        if (!m.Success) return null;
        var value = double.Parse(m.Groups["number"].Value, CultureInfo.InvariantCulture);
        var bytes = m.Groups["unit"].Value switch
        {
            "" or "b" => value,
            "k" or "kb" => value * 1024,
            "m" or "mb" => value * 1024 * 1024,
            "g" or "gb" => value * 1024 * 1024 * 1024,
            _ => double.NaN,
        };
        return double.IsNaN(bytes) ? null : (int)Math.Ceiling(bytes / 1024 / 1024);
    }

    [GeneratedRegex(@"^(?<number>[0-9]+(?:\.[0-9]+)?)\s*(?<unit>b|k|kb|m|mb|g|gb)?$", RegexOptions.ExplicitCapture, 1000)]
    private static partial Regex SizePattern();

    /// <summary>A command as a list, or as one string split the way a shell splits words (quotes, backslashes), as Compose does.</summary>
    private static IEnumerable<string> Words(JsonNode? node, string pointer, Action<string, string> refuse)
    {
        switch (node)
        {
            case null: return [];
            case JsonArray a: return a.Select(x => x?.ToString() ?? "");
            default:
                var text = node.ToString();
                var words = new List<string>();
                var current = new System.Text.StringBuilder();
                char? quote = null;
                var inWord = false;
                for (var i = 0; i < text.Length; i++)
                {
                    var ch = text[i];
                    if (quote is null && char.IsWhiteSpace(ch))
                    {
                        if (inWord) words.Add(current.ToString());
                        current.Clear();
                        inWord = false;
                        continue;
                    }
                    inWord = true;
                    if (ch == '\\' && quote != '\'' && i + 1 < text.Length) current.Append(text[++i]);
                    else if (quote is null && ch is '"' or '\'') quote = ch;
                    else if (quote == ch) quote = null;
                    else current.Append(ch);
                }
                if (quote is not null) refuse(pointer, "an unclosed quote");
                if (inWord) words.Add(current.ToString());
                return words;
        }
    }

    private static Dictionary<string, string> Environment(ComposeDocument doc, JsonObject spec, string p, IReadOnlyDictionary<string, string?> variables,
        Action<string, string> refuse)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        var files = spec["env_file"] switch
        {
            null => [],
            JsonArray a => a.Select(x => x?.ToString() ?? "").ToList(),
            var one => [one.ToString()],
        };
        foreach (var file in files)
        {
            var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(doc.Path))!, file);
            if (!File.Exists(path))
            {
                refuse(p + "/env_file", $"{file} does not exist");
                continue;
            }
            foreach (var (key, value) in EnvFile.Read(path)) env[key] = value;
        }
        switch (spec["environment"])
        {
            case JsonObject map:
                foreach (var (key, value) in map)
                {
                    if (value is not null) env[key] = value.ToString();
                    else if (variables.TryGetValue(key, out var fromShell) && fromShell is not null) env[key] = fromShell;
                }
                break;
            case JsonArray list:
                foreach (var item in list.Select(x => x?.ToString() ?? ""))
                {
                    var eq = item.IndexOf('=');
                    if (eq > 0) env[item[..eq]] = item[(eq + 1)..];
                    else if (variables.TryGetValue(item, out var fromShell) && fromShell is not null) env[item] = fromShell;
                }
                break;
        }
        return env;
    }

    private static (string Type, string? Source, string Target, bool ReadOnly)? Mount(JsonNode? entry)
    {
        if (entry is JsonObject o)
            return o["target"]?.ToString() is { } target
                ? (o["type"]?.ToString() ?? "volume", o["source"]?.ToString(), target, o["read_only"] is JsonValue r && r.TryGetValue<bool>(out var ro) && ro)
                : null;
        var parts = entry?.ToString().Split(':') ?? [];
        return parts switch
        {
            [var target] => ("volume", null, target, false),
            [var source, var target] => ("volume", source, target, false),
            [var source, var target, var mode] => ("volume", source, target, mode.Split(',').Contains("ro")),
            _ => null,
        };
    }

    /// <summary>The container ports a service publishes (HTTP through an ingress); UDP cannot be published that way.</summary>
    private static List<int> Ports(JsonNode? node, string p, Action<string, string> refuse)
    {
        var ports = new List<int>();
        var i = 0;
        foreach (var entry in node as JsonArray ?? [])
        {
            var ep = $"{p}/ports/{i++}";
            if (entry is JsonObject o)
            {
                if (o["protocol"]?.ToString() is { } proto && proto != "tcp") refuse(ep, $"{proto} ports cannot be published: Kraud publishes HTTP through managed ingresses");
                else if (Int(o["target"]) is { } t) ports.Add(t);
                continue;
            }
            var text = entry?.ToString() ?? "";
            var protocol = text.Contains('/') ? text[(text.IndexOf('/') + 1)..] : "tcp";
            if (protocol != "tcp")
            {
                refuse(ep, $"{protocol} ports cannot be published: Kraud publishes HTTP through managed ingresses");
                continue;
            }
            var container = text.Split('/')[0].Split(':')[^1];
            if (container.Contains('-')) refuse(ep, "port ranges cannot be published through an ingress");
            else if (int.TryParse(container, NumberStyles.None, CultureInfo.InvariantCulture, out var port)) ports.Add(port);
            else refuse(ep, $"'{text}' is not a port");
        }
        return ports;
    }
}

/// <summary>env_file: KEY=VALUE lines; # comments and blank lines skipped; one pair of surrounding quotes removed.</summary>
public static class EnvFile
{
    public static IEnumerable<(string Key, string Value)> Read(string path)
    {
        foreach (var raw in File.ReadAllLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith("export ", StringComparison.Ordinal)) line = line[7..].TrimStart();
            var eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var value = line[(eq + 1)..];
            if (value.Length >= 2 && (value[0] == '"' && value[^1] == '"' || value[0] == '\'' && value[^1] == '\'')) value = value[1..^1];
            yield return (line[..eq].Trim(), value);
        }
    }
}
