using System.Collections;
using System.CommandLine;
using Kraud.Cli.Api;
using Kraud.Cli.Compose;
using Kraud.Cli.Infrastructure;
using Spectre.Console;

namespace Kraud.Cli.Commands;

/// <summary>kraud up, kraud down: a compose file's services, volumes and ingresses as Kraud resources, grouped by the project's namespace.</summary>
public static class ComposeCommands
{
    private static readonly Option<FileInfo?> File = new("--file", "-f") { Description = "The compose file (default: compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml here)" };
    private static readonly Option<string?> Project = new("--project-name", "-p") { Description = "The project (and namespace) name (default: name: in the file, else the directory's name)" };

    public static Command Up()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Show the plan and change nothing" };
        var wait = new Option<bool>("--wait") { Description = "Wait until every pod runs, showing each replica's state" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds --wait waits at most", DefaultValueFactory = _ => 300 };
        var cmd = new Command("up", "Create or update what a compose file describes; shows the plan first").With(File, Project, dryRun, wait, timeout);
        cmd.Does(async c =>
        {
            var project = Read(c);
            foreach (var w in project.Warnings) c.Output.Note($"[yellow]warning[/]: line {w.Line}: {Markup.Escape(w.Where + w.Reason)}");
            var pods = await PodsApi.AllAsync(c, project.Name);
            var plan = ComposePlan.ForUp(project, pods, await VolumesApi.AllAsync(c), await c.RunAsync(IngressesApi.List));
            Show(c, plan);
            if (c.Get(dryRun) || plan.Empty && !c.Get(wait)) return;
            var podIds = await ApplyAsync(c, project, plan);
            if (c.Get(wait)) await PodWait.UntilRunningAsync(c, podIds, TimeSpan.FromSeconds(c.Get(timeout)));
            if (c.Output.Format == OutputFormat.Table)
                c.Output.Console.MarkupLine(c.Get(wait) ? $"project {Markup.Escape(project.Name)} is running" : $"project {Markup.Escape(project.Name)} is up");
        });
        return cmd;
    }

    public static Command Down()
    {
        var volumes = new Option<bool>("--volumes", "-v") { Description = "Also delete the file's named volumes (their data is crypto-erased)" };
        var cmd = new Command("down", "Delete what `kraud up` made for a compose file (volumes only with --volumes)").With(File, Project, volumes);
        cmd.Does(async c =>
        {
            var project = Read(c);
            var plan = ComposePlan.ForDown(project, await PodsApi.AllAsync(c, project.Name), await VolumesApi.AllAsync(c), await c.RunAsync(IngressesApi.List),
                c.Get(volumes));
            Show(c, plan);
            if (plan.Empty) return;
            await ApplyAsync(c, project, plan);
            if (c.Output.Format == OutputFormat.Table) c.Output.Console.MarkupLine($"project {Markup.Escape(project.Name)} is down");
        });
        return cmd;
    }

    private static void Show(CommandContext c, ComposePlan plan)
    {
        if (c.Output.Format == OutputFormat.Table) plan.Render(c.Output.Console);
        else c.Output.Structured(plan.Summary());
    }

    private static async Task<IReadOnlyList<string>> ApplyAsync(CommandContext c, ComposeProject project, ComposePlan plan)
    {
        if (!c.Output.IsTerminal) return await ComposeApply.RunAsync(c, project, plan, _ => { });
        IReadOnlyList<string> ids = [];
        await c.Output.Console.Status().StartAsync("applying…", async status => ids = await ComposeApply.RunAsync(c, project, plan, s => status.Status(Markup.Escape(s))));
        return ids;
    }

    private static ComposeProject Read(CommandContext c)
    {
        var file = c.Get(File) ?? Default();
        if (!file.Exists) throw new CliException($"{file.FullName} does not exist.");
        var variables = Variables(file.DirectoryName!);
        try
        {
            var document = ComposeDocument.Load(file.FullName, variables);
            if (ComposeSchema.Validate(document) is { Count: > 0 } invalid) throw new ComposeException(file.FullName, invalid);
            return ComposeProject.From(document, c.Get(Project), variables);
        }
        catch (ComposeException e)
        {
            // Refused before anything is created: nothing was asked of Kraud yet.
            throw new KraudApiException("VALIDATION", e.Message);
        }
    }

    private static FileInfo Default()
    {
        foreach (var name in new[] { "compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml" })
            if (System.IO.File.Exists(name)) return new FileInfo(name);
        throw new CliException("No compose file here (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml): give one with -f.");
    }

    /// <summary>Interpolation variables: the project directory's .env file, overridden by the environment, as Compose does.</summary>
    private static Dictionary<string, string?> Variables(string directory)
    {
        var vars = new Dictionary<string, string?>(StringComparer.Ordinal);
        var dotEnv = Path.Combine(directory, ".env");
        if (System.IO.File.Exists(dotEnv))
            foreach (var (key, value) in EnvFile.Read(dotEnv)) vars[key] = value;
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables()) vars[(string)e.Key] = (string?)e.Value;
        return vars;
    }
}
