using System.CommandLine;

namespace Kraud.Cli.Infrastructure;

/// <summary>What every command's action gets: the parsed line, its output, and (on first use) a client of the current context.</summary>
public sealed class CommandContext(ParseResult parse, CancellationToken cancellation) : IDisposable
{
    private KraudClient? _client;

    public ParseResult Parse { get; } = parse;
    public CancellationToken Cancellation { get; } = cancellation;
    public Output Output { get; } = new(parse.GetValue(CliCommand.OutputOption));

    public KraudClient Client => _client ??= KraudClient.FromConfig();

    public T Get<T>(Option<T> option) => Parse.GetValue(option)!;

    public T Get<T>(Argument<T> argument) => Parse.GetValue(argument)!;

    public Task<T> RunAsync<T>(Operation<T> operation, object? variables = null) => Client.RunAsync(operation, variables, Cancellation);

    public void Dispose() => _client?.Dispose();
}

public static class CliCommand
{
    public static readonly Option<OutputFormat> OutputOption = new("--output", "-o")
    {
        Description = "How reads print: table, json or yaml",
        Recursive = true,
        DefaultValueFactory = _ => OutputFormat.Table,
    };

    /// <summary>
    /// Runs an action with the CLI's error rules: the API's code and message on stderr and exit code 1; a mistake the
    /// user can fix locally (no login, a bad file) exit code 2; 0 only when everything asked for was done.
    /// </summary>
    public static void Does(this Command command, Func<CommandContext, Task<int>> action) =>
        command.SetAction(async (parse, ct) =>
        {
            using var context = new CommandContext(parse, ct);
            try
            {
                return await action(context);
            }
            catch (KraudApiException e)
            {
                await Console.Error.WriteLineAsync($"error: {e.Code}: {e.Message}");
                return 1;
            }
            catch (CliException e)
            {
                await Console.Error.WriteLineAsync($"error: {e.Message}");
                return e.ExitCode;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync("interrupted");
                return 130;
            }
        });

    public static void Does(this Command command, Func<CommandContext, Task> action) =>
        command.Does(async c =>
        {
            await action(c);
            return 0;
        });

    public static Command With(this Command command, params Symbol[] symbols)
    {
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Option o: command.Options.Add(o); break;
                case Argument a: command.Arguments.Add(a); break;
                case Command c: command.Subcommands.Add(c); break;
            }
        }
        return command;
    }
}
