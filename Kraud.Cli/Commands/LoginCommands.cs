using System.CommandLine;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Commands;

/// <summary>kraud login, kraud context list|use</summary>
public static class LoginCommands
{
    public static Command Login()
    {
        var url = new Option<string>("--url") { Description = "Kraud's address, e.g. http://127.0.0.1:8080", Required = true };
        var token = new Option<string>("--token") { Description = "An API token (Authorization: Bearer)", Required = true };
        var name = new Option<string?>("--context") { Description = "Name of the context (default: the URL's host and port)" };
        var cmd = new Command("login", "Check a token against a Kraud and keep it as the current context").With(url, token, name);
        cmd.Does(async c =>
        {
            var context = new CliContext(c.Get(url).TrimEnd('/'), c.Get(token));
            // The token is kept only if Kraud takes it: a typo fails here, not at the next command.
            using var client = new KraudClient(context);
            var me = await client.RunAsync(AccessApi.Me, null, c.Cancellation);
            var contextName = c.Get(name) ?? $"{client.BaseUrl.Host}:{client.BaseUrl.Port}";
            var config = CliConfig.Load();
            config.Contexts[contextName] = context;
            config.Current = contextName;
            config.Save();
            c.Output.Done(new { context = contextName, url = context.Url, me.Role, tenant = me.Tenant },
                $"logged in to {context.Url} as {me.Role}{(me.Tenant is { } t ? $" of tenant {t.Name}" : "")}; context {contextName} is current");
        });
        return cmd;
    }

    public static Command Context()
    {
        var list = new Command("list", "The contexts kept, the current one marked");
        list.Aliases.Add("ls");
        list.Does(c =>
        {
            var config = CliConfig.Load();
            var rows = config.Contexts.Select(kv => new ContextRow(kv.Key == config.Current, kv.Key, kv.Value.Url)).ToList();
            c.Output.List(rows, new Column<ContextRow>("CURRENT", r => r.Current ? "*" : ""), new("NAME", r => r.Name), new("URL", r => r.Url));
            return Task.CompletedTask;
        });
        var name = new Argument<string>("name") { Description = "A context `kraud context list` shows" };
        var use = new Command("use", "Make a context the current one").With(name);
        use.Does(c =>
        {
            var config = CliConfig.Load();
            if (!config.Contexts.ContainsKey(c.Get(name)))
                throw new CliException($"No context {c.Get(name)}: `kraud context list` shows them, `kraud login --context` adds one.");
            config.Current = c.Get(name);
            config.Save();
            c.Output.Done(new { current = config.Current }, $"context {config.Current} is current");
            return Task.CompletedTask;
        });
        return new Command("context", "The Kraud endpoints and tokens this CLI knows").With(list, use);
    }

    private sealed record ContextRow(bool Current, string Name, string Url);
}
