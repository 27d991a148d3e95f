using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using YamlDotNet.Serialization;

namespace Kraud.Cli.Infrastructure;

public enum OutputFormat { Table, Json, Yaml }

public sealed record Column<T>(string Header, Func<T, string?> Value);

/// <summary>
/// Where results go: a table (coloured on a terminal), JSON or YAML on stdout. Progress and live status are drawn only
/// when stdout is a terminal, so scripts and pipes get the result and nothing else.
/// </summary>
public sealed class Output
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public OutputFormat Format { get; }
    public IAnsiConsole Console { get; }

    /// <summary>stdout is a terminal: live progress, colours and tables sized to the window.</summary>
    public bool IsTerminal { get; }

    public Output(OutputFormat format)
    {
        Format = format;
        IsTerminal = !System.Console.IsOutputRedirected;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(System.Console.Out),
            Interactive = IsTerminal ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = IsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = IsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        // A pipe has no width: do not wrap table rows at 80 columns for it.
        if (!IsTerminal) Console.Profile.Width = 400;
    }

    public void List<T>(IReadOnlyList<T> rows, params Column<T>[] columns)
    {
        if (Format != OutputFormat.Table)
        {
            Structured(rows);
            return;
        }
        var table = new Table().Border(IsTerminal ? TableBorder.Rounded : TableBorder.None);
        foreach (var c in columns) table.AddColumn(new TableColumn(c.Header).NoWrap());
        foreach (var row in rows) table.AddRow(columns.Select(c => Cell(c.Header, c.Value(row))).ToArray());
        Console.Write(table);
    }

    public void One<T>(T item, params Column<T>[] fields)
    {
        if (Format != OutputFormat.Table)
        {
            Structured(item);
            return;
        }
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        foreach (var f in fields) grid.AddRow(new Text(f.Header, new Style(decoration: Decoration.Bold)), Cell(f.Header, f.Value(item)));
        Console.Write(grid);
    }

    /// <summary>What a mutation did: a sentence on a table output, the object itself as JSON or YAML.</summary>
    public void Done<T>(T item, string sentence)
    {
        if (Format == OutputFormat.Table) Console.MarkupLine(Markup.Escape(sentence));
        else Structured(item);
    }

    public void Structured<T>(T value)
    {
        var json = JsonSerializer.Serialize(value, Json);
        if (Format == OutputFormat.Yaml)
        {
            var tree = Plain(JsonNode.Parse(json));
            System.Console.Out.Write(new SerializerBuilder().WithQuotingNecessaryStrings().Build().Serialize(tree));
        }
        else System.Console.Out.WriteLine(json);
    }

    /// <summary>A line for people (hints, plans) on stderr when the result itself goes to stdout as JSON or YAML.</summary>
    public void Note(string markup)
    {
        if (Format == OutputFormat.Table) Console.MarkupLine(markup);
        else System.Console.Error.WriteLine(Markup.Remove(markup));
    }

    private static object? Plain(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => Plain(p.Value)),
        JsonArray a => a.Select(Plain).ToList(),
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v when v.TryGetValue<string>(out var text) => text,
        _ => node.ToJsonString(),
    };

    private static Markup Cell(string header, string? value)
    {
        var text = Markup.Escape(value ?? "-");
        var colour = header is "STATE" or "OUTCOME" or "VALID" ? StateColour(value) : null;
        return new Markup(colour is null ? text : $"[{colour}]{text}[/]");
    }

    public static string? StateColour(string? state) => state switch
    {
        "RUNNING" or "HEALTHY" or "READY" or "SUCCEEDED" or "true" or "ok" or "PLACED" or "ACTIVE" => "green",
        "FAILED" or "UNSCHEDULABLE" or "UNAVAILABLE" or "false" or "REFUSED" or "rejected" => "red",
        "PENDING" or "SCHEDULED" or "BOOTING" or "PROVISIONING" or "DEGRADED" or "CORDONED" or "DRAINING" or "STOPPING" => "yellow",
        _ => null,
    };

    public static string Time(DateTime? at) => at is { } t ? t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "-";
}
