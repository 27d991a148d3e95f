using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Kraud.Cli.Compose;

/// <summary>
/// A compose file read the way Compose reads it: YAML (anchors, aliases and `&lt;&lt;` merge keys), variables interpolated
/// from the environment and the project's .env file, plain scalars typed by YAML 1.2's core schema. The JSON form is
/// what the compose-spec schema checks; <see cref="Line"/> names the YAML line of any JSON pointer, for messages.
/// </summary>
public sealed partial class ComposeDocument
{
    private readonly Dictionary<string, int> _lines = new(StringComparer.Ordinal);

    public string Path { get; }
    public JsonObject Root { get; }

    private ComposeDocument(string path, JsonObject root, Dictionary<string, int> lines)
    {
        Path = path;
        Root = root;
        _lines = lines;
    }

    public static ComposeDocument Load(string path, IReadOnlyDictionary<string, string?> variables)
    {
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new ComposeException(path, [new Refusal((int)e.Start.Line, "", $"not valid YAML: {e.InnerException?.Message ?? e.Message}")]);
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode)
            throw new ComposeException(path, [new Refusal(1, "", "a compose file is one YAML mapping (services:, volumes:, …)")]);
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        var errors = new List<Refusal>();
        var root = (JsonObject)Convert(stream.Documents[0].RootNode, "", lines, variables, errors)!;
        if (errors.Count > 0) throw new ComposeException(path, errors);
        return new ComposeDocument(path, root, lines);
    }

    /// <summary>The YAML line of a JSON pointer, or of its nearest parent that has one.</summary>
    public int Line(string pointer)
    {
        while (true)
        {
            if (_lines.TryGetValue(pointer, out var line)) return line;
            if (pointer.Length == 0) return 1;
            pointer = pointer[..pointer.LastIndexOf('/')];
        }
    }

    public static string Pointer(params string[] segments) =>
        string.Concat(segments.Select(s => "/" + s.Replace("~", "~0").Replace("/", "~1")));

    private static JsonNode? Convert(YamlNode node, string pointer, Dictionary<string, int> lines, IReadOnlyDictionary<string, string?> vars,
        List<Refusal> errors)
    {
        lines.TryAdd(pointer, (int)node.Start.Line);
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                var merged = new List<YamlMappingNode>();
                foreach (var (keyNode, value) in map.Children)
                {
                    var key = ((YamlScalarNode)keyNode).Value ?? "";
                    if (key == "<<")
                    {
                        // Merge keys: the mapping's own keys win over what it merges in.
                        merged.AddRange(value is YamlSequenceNode seq ? seq.Children.OfType<YamlMappingNode>() : value is YamlMappingNode m ? [m] : []);
                        continue;
                    }
                    var childPointer = pointer + Pointer(key);
                    lines[childPointer] = (int)keyNode.Start.Line;
                    obj[key] = Convert(value, childPointer, lines, vars, errors);
                    lines[childPointer] = (int)keyNode.Start.Line;
                }
                foreach (var source in merged)
                    foreach (var (keyNode, value) in source.Children)
                    {
                        var key = ((YamlScalarNode)keyNode).Value ?? "";
                        if (!obj.ContainsKey(key)) obj[key] = Convert(value, pointer + Pointer(key), lines, vars, errors);
                    }
                return obj;
            case YamlSequenceNode sequence:
                var array = new JsonArray();
                var i = 0;
                foreach (var item in sequence.Children) array.Add(Convert(item, $"{pointer}/{i++}", lines, vars, errors));
                return array;
            case YamlScalarNode scalar:
                var text = scalar.Value ?? "";
                try
                {
                    text = Interpolate(text, vars);
                }
                catch (FormatException e)
                {
                    errors.Add(new Refusal((int)scalar.Start.Line, pointer, e.Message));
                }
                return scalar.Style is ScalarStyle.Plain ? Typed(text) : JsonValue.Create(text);
            default:
                return null;
        }
    }

    /// <summary>YAML 1.2 core schema: what an unquoted scalar means.</summary>
    private static JsonNode? Typed(string text)
    {
        if (text is "" or "~" or "null" or "Null" or "NULL") return null;
        if (text is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (text is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (IntegerPattern().IsMatch(text) && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (FloatPattern().IsMatch(text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return JsonValue.Create(d);
        return JsonValue.Create(text);
    }

    [GeneratedRegex(@"^[-+]?[0-9]+$", RegexOptions.None, 1000)]
    private static partial Regex IntegerPattern();

    [GeneratedRegex(@"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", RegexOptions.None, 1000)]
    private static partial Regex FloatPattern();

    /// <summary>Compose interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a dollar.</summary>
    public static string Interpolate(string text, IReadOnlyDictionary<string, string?> vars)
    {
        if (!text.Contains('$')) return text;
        return Variable().Replace(text, m =>
        {
            if (m.Value == "$$") return "$";
            var name = m.Groups["plain"].Success ? m.Groups["plain"].Value : m.Groups["name"].Value;
            vars.TryGetValue(name, out var value);
            var op = m.Groups["op"].Value;
            var arg = m.Groups["arg"].Value;
            var unsetOrEmpty = string.IsNullOrEmpty(value);
            return op switch
            {
                ":-" => unsetOrEmpty ? arg : value!,
                "-" => value ?? arg,
                ":?" when unsetOrEmpty => throw new FormatException($"variable {name} is required: {arg}"),
                "?" when value is null => throw new FormatException($"variable {name} is required: {arg}"),
                _ => value ?? "",
            };
        });
    }

    [GeneratedRegex(@"\$\$|\$(?<plain>[A-Za-z_][A-Za-z0-9_]*)|\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?<op>:-|-|:\?|\?)(?<arg>[^}]*))?\}", RegexOptions.ExplicitCapture, 1000)]
    private static partial Regex Variable();
}

/// <summary>Something in a compose file Kraud cannot honour (or cannot read), with its line and why.</summary>
public sealed record Refusal(int Line, string Pointer, string Reason)
{
    public string Where => Pointer.Length == 0 ? "" : Pointer.TrimStart('/').Replace('/', '.').Replace("~1", "/").Replace("~0", "~") + ": ";
}

public sealed class ComposeException(string path, IReadOnlyList<Refusal> refusals)
    : Exception($"{System.IO.Path.GetFileName(path)} cannot run on Kraud:\n" +
                string.Join("\n", refusals.OrderBy(r => r.Line).Select(r => $"  line {r.Line}: {r.Where}{r.Reason}")))
{
    public IReadOnlyList<Refusal> Refusals { get; } = refusals;
}
