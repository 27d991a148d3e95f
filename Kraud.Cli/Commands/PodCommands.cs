using System.CommandLine;
using System.Text.Json;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Commands;

/// <summary>kraud pods create|list|get|scale|restart|delete|logs</summary>
public static class PodCommands
{
    private static readonly Option<string?> Namespace = new("--namespace", "-n") { Description = "The pod's namespace (default: default)" };
    private static readonly Argument<string> Pod = new("pod") { Description = "The pod's id or name" };
    private static readonly Option<bool> Wait = new("--wait") { Description = "Wait until every replica runs (or fails), showing each replica's state" };
    private static readonly Option<int> Timeout = new("--timeout") { Description = "Seconds --wait waits at most", DefaultValueFactory = _ => 300 };
    private static readonly Option<int?> ExpectedVersion = new("--expected-version") { Description = "Refuse (CONFLICT) if the pod changed since this version" };

    public static Command Build() => new Command("pods", "Pods: microVMs running an image").With(Create(), List(), Get(), Scale(), Restart(), Delete(), Logs());

    public static readonly Column<Pod>[] Columns =
    [
        new("NAME", p => p.Name), new("NAMESPACE", p => p.Namespace), new("IMAGE", p => p.Image),
        new("READY", p => $"{p.Instances.Count(i => i.State == "RUNNING")}/{p.Replicas}"), new("STATE", p => p.State),
        new("CPU", p => p.Cpu.ToString(CultureInfo.InvariantCulture)), new("MEMORY", p => $"{p.MemoryMiB}Mi"), new("ID", p => p.Id), new("REASON", p => p.Reason),
    ];

    private static readonly Column<Pod>[] Details =
    [
        new("ID", p => p.Id), new("NAME", p => p.Name), new("NAMESPACE", p => p.Namespace), new("IMAGE", p => p.Image),
        new("COMMAND", p => p.Command is { Count: > 0 } cmd ? string.Join(' ', cmd) : null), new("STATE", p => p.State),
        new("REASON", p => p.Reason), new("REPLICAS", p => p.Replicas.ToString(CultureInfo.InvariantCulture)), new("CPU", p => p.Cpu.ToString(CultureInfo.InvariantCulture)),
        new("MEMORY", p => $"{p.MemoryMiB}Mi"), new("VERSION", p => p.Version.ToString(CultureInfo.InvariantCulture)), new("CREATED", p => Output.Time(p.CreatedAt)),
        new("MICROVMS", p => string.Join("\n", p.Instances.Select(i => $"{i.Id} {i.State} host {i.HostId} {i.Ip4} {i.Ip6}"))),
        new("VOLUMES", p => string.Join("\n", p.Volumes.Select(v => $"{v.VolumeId} at {v.MountPath}{(v.ReadOnly ? " (ro)" : "")}"))),
    ];

    private static Command Create()
    {
        var name = new Argument<string>("name") { Description = "The pod's name, unique in its namespace" };
        var image = new Option<string>("--image") { Description = "The image to run", Required = true };
        var cpu = new Option<int>("--cpu") { Description = "vCPUs per replica", DefaultValueFactory = _ => 1 };
        var memory = new Option<int>("--memory-mib", "--memory") { Description = "Memory per replica in MiB", DefaultValueFactory = _ => 512 };
        var replicas = new Option<int>("--replicas", "-r") { Description = "Number of microVMs", DefaultValueFactory = _ => 1 };
        var zone = new Option<string?>("--zone") { Description = "The zone to run in (default: the roomiest)" };
        var env = new Option<string[]>("--env", "-e") { Description = "KEY=VALUE, repeatable", AllowMultipleArgumentsPerToken = false };
        var command = new Option<string[]>("--command") { Description = "The command and its arguments, repeatable in order" };
        var ephemeral = new Option<int?>("--ephemeral-gib") { Description = "Encrypted ephemeral disk per replica, GiB" };
        var confidential = new Option<bool>("--confidential") { Description = "Run on AMD SEV-SNP, attested before it runs" };
        var volume = new Option<string[]>("--volume", "-v") { Description = "VOLUME_ID:/mount/path[:ro], repeatable" };
        var cmd = new Command("create", "Create a pod").With(name, image, cpu, memory, replicas, Namespace, zone, env, command, ephemeral, confidential,
            volume, Wait, Timeout);
        cmd.Does(async c =>
        {
            var input = new Dictionary<string, object?>
            {
                ["name"] = c.Get(name), ["namespace"] = c.Get(Namespace), ["image"] = c.Get(image), ["cpu"] = c.Get(cpu),
                ["memoryMiB"] = c.Get(memory), ["replicas"] = c.Get(replicas), ["zone"] = c.Get(zone), ["confidential"] = c.Get(confidential),
                ["ephemeralGiB"] = c.Get(ephemeral), ["command"] = c.Get(command) is { Length: > 0 } argv ? argv : null,
                ["env"] = ParseEnv(c.Get(env)), ["volumes"] = ParseVolumes(c.Get(volume)),
            };
            var pod = await c.RunAsync(PodsApi.Create, new { input });
            if (!c.Get(Wait))
            {
                c.Output.Done(pod, $"pod {pod.Name} created ({pod.Id}), {pod.State}");
                return;
            }
            pod = (await PodWait.UntilRunningAsync(c, [pod.Id], TimeSpan.FromSeconds(c.Get(Timeout))))[0];
            c.Output.Done(pod, $"pod {pod.Name} is RUNNING: {pod.Replicas} of {pod.Replicas} replicas ({pod.Id})");
        });
        return cmd;
    }

    private static Command List()
    {
        var all = new Option<bool>("--all", "-a") { Description = "Also show stopped (deleted) pods" };
        var cmd = new Command("list", "List pods").With(Namespace, all);
        cmd.Aliases.Add("ls");
        cmd.Does(async c =>
        {
            var pods = await PodsApi.AllAsync(c, c.Get(Namespace));
            c.Output.List(c.Get(all) ? pods : pods.Where(p => p.State != "STOPPED").ToList(), Columns);
        });
        return cmd;
    }

    private static Command Get()
    {
        var cmd = new Command("get", "Show one pod with its microVMs").With(Pod, Namespace);
        cmd.Does(async c => c.Output.One(await PodsApi.FindAsync(c, c.Get(Pod), c.Get(Namespace)), Details));
        return cmd;
    }

    private static Command Scale()
    {
        var replicas = new Argument<int>("replicas") { Description = "The number of microVMs wanted" };
        var cmd = new Command("scale", "Change the number of replicas").With(Pod, replicas, Namespace, ExpectedVersion, Wait, Timeout);
        cmd.Does(async c =>
        {
            var found = await PodsApi.FindAsync(c, c.Get(Pod), c.Get(Namespace));
            var pod = await c.RunAsync(PodsApi.Scale, new { id = found.Id, replicas = c.Get(replicas), expectedVersion = c.Get(ExpectedVersion) });
            if (c.Get(Wait)) pod = (await PodWait.UntilRunningAsync(c, [pod.Id], TimeSpan.FromSeconds(c.Get(Timeout))))[0];
            c.Output.Done(pod, $"pod {pod.Name} scaled to {pod.Replicas} replicas, {pod.State}");
        });
        return cmd;
    }

    private static Command Restart()
    {
        var cmd = new Command("restart", "Restart every microVM of a pod").With(Pod, Namespace, Wait, Timeout);
        cmd.Does(async c =>
        {
            var found = await PodsApi.FindAsync(c, c.Get(Pod), c.Get(Namespace));
            var pod = await c.RunAsync(PodsApi.Restart, new { id = found.Id });
            if (c.Get(Wait)) pod = (await PodWait.UntilRunningAsync(c, [pod.Id], TimeSpan.FromSeconds(c.Get(Timeout))))[0];
            c.Output.Done(pod, $"pod {pod.Name} restarting, {pod.State}");
        });
        return cmd;
    }

    private static Command Delete()
    {
        var cmd = new Command("delete", "Stop a pod's microVMs and delete it").With(Pod, Namespace, ExpectedVersion);
        cmd.Aliases.Add("rm");
        cmd.Does(async c =>
        {
            var found = await PodsApi.FindAsync(c, c.Get(Pod), c.Get(Namespace));
            var pod = await c.RunAsync(PodsApi.Delete, new { id = found.Id, expectedVersion = c.Get(ExpectedVersion) });
            c.Output.Done(pod, $"pod {pod.Name} deleted, {pod.State}");
        });
        return cmd;
    }

    /// <summary>
    /// kraud pods logs: the pod's workload lines from GET /api/pods/{id}/logs (NDJSON), stdout lines on stdout and stderr
    /// lines on stderr as the workload wrote them. --follow keeps the stream open and prints new lines as the hosts ship
    /// them, until Ctrl-C or the pod is deleted. -o json prints the stream as it comes (one JSON object a line), -o yaml a
    /// YAML sequence of the same objects.
    /// </summary>
    private static Command Logs()
    {
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines as the pod writes them (until Ctrl-C or the pod is deleted)" };
        var replica = new Option<int?>("--replica") { Description = "Only this replica's lines (0, 1, …)" };
        var tail = new Option<int?>("--tail") { Description = "Only the last N lines (with --follow: then the new ones)" };
        var timestamps = new Option<bool>("--timestamps") { Description = "Begin each line with the time it was written (UTC)" };
        var cmd = new Command("logs", "Print a pod's workload output (stdout and stderr)").With(Pod, Namespace, follow, replica, tail, timestamps);
        cmd.Does(async c =>
        {
            if (c.Get(tail) is < 0) throw new CliException("--tail must not be negative.");
            if (c.Get(replica) is < 0) throw new CliException("--replica must not be negative.");
            var pod = await PodsApi.FindAsync(c, c.Get(Pod), c.Get(Namespace));
            var query = new List<string>();
            if (c.Get(follow)) query.Add("follow=true");
            if (c.Get(replica) is { } r) query.Add($"replica={r.ToString(CultureInfo.InvariantCulture)}");
            if (c.Get(tail) is { } t) query.Add($"tail={t.ToString(CultureInfo.InvariantCulture)}");
            using var response = await c.Client.GetAsync($"api/pods/{pod.Id}/logs" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), c.Cancellation);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(c.Cancellation));
            // Several replicas write into one stream: each line says whose it is, unless one replica was asked for.
            var prefix = pod.Replicas > 1 && c.Get(replica) is null;
            while (await reader.ReadLineAsync(c.Cancellation) is { } json)
            {
                if (json.Length == 0) continue;
                if (c.Output.Format != OutputFormat.Table)
                {
                    await Console.Out.WriteLineAsync(c.Output.Format == OutputFormat.Yaml ? "- " + json : json);
                    await Console.Out.FlushAsync(c.Cancellation);
                    continue;
                }
                var line = JsonSerializer.Deserialize<PodLogLine>(json, KraudClient.Json)!;
                var text = (c.Get(timestamps) ? line.At.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z' ", CultureInfo.InvariantCulture) : "")
                           + (prefix ? $"[{line.Replica.ToString(CultureInfo.InvariantCulture)}] " : "") + line.Line;
                var writer = line.Stream == "stderr" ? Console.Error : Console.Out;
                await writer.WriteLineAsync(text);
                await writer.FlushAsync(c.Cancellation);
            }
        });
        return cmd;
    }

    public static Dictionary<string, string>? ParseEnv(string[]? pairs)
    {
        if (pairs is not { Length: > 0 }) return null;
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=');
            if (eq <= 0) throw new CliException($"--env {pair}: write KEY=VALUE.");
            env[pair[..eq]] = pair[(eq + 1)..];
        }
        return env;
    }

    private static List<object>? ParseVolumes(string[]? specs)
    {
        if (specs is not { Length: > 0 }) return null;
        return specs.Select(s =>
        {
            var parts = s.Split(':');
            if (parts.Length is < 2 or > 3 || !parts[1].StartsWith('/') || (parts.Length == 3 && parts[2] is not ("ro" or "rw")))
                throw new CliException($"--volume {s}: write VOLUME_ID:/mount/path or VOLUME_ID:/mount/path:ro.");
            return (object)new { volumeId = parts[0], mountPath = parts[1], readOnly = parts.Length == 3 && parts[2] == "ro" };
        }).ToList();
    }
}
