using System.Collections;
using System.Text.Json;
using Kraud.Domain.Common;

namespace Kraud.Api.Gql;

/// <summary>A GraphQL input object as GraphQL.NET hands it over (a dictionary, already type-checked against the schema).</summary>
public sealed class InputArgs(IDictionary<string, object?> values)
{
    public bool Has(string name) => values.TryGetValue(name, out var v) && v is not null;

    public T Required<T>(string name) =>
        values.TryGetValue(name, out var v) && v is T typed ? typed : throw DomainException.Validation($"{name} is required.");

    public T? Optional<T>(string name) where T : class => values.TryGetValue(name, out var v) ? v as T : null;

    public int? Int(string name) => values.TryGetValue(name, out var v) && v is not null ? Convert.ToInt32(v, CultureInfo.InvariantCulture) : null;

    public bool? Bool(string name) => values.TryGetValue(name, out var v) && v is bool b ? b : null;

    public IReadOnlyList<string> Strings(string name) =>
        values.TryGetValue(name, out var v) && v is IEnumerable list and not string ? list.Cast<object?>().Select(x => x?.ToString() ?? "").ToList() : [];

    public IReadOnlyList<InputArgs> Objects(string name) =>
        values.TryGetValue(name, out var v) && v is IEnumerable list and not string
            ? list.Cast<object?>().OfType<IDictionary<string, object?>>().Select(d => new InputArgs(d)).ToList()
            : [];

    /// <summary>A JSON object of string values (env): anything else is a VALIDATION error naming the field.</summary>
    public IReadOnlyDictionary<string, string> StringMap(string name)
    {
        if (!values.TryGetValue(name, out var v) || v is null) return new Dictionary<string, string>();
        var element = v as JsonElement? ?? JsonSerializer.SerializeToElement(v);
        if (element.ValueKind == JsonValueKind.Null) return new Dictionary<string, string>();
        if (element.ValueKind != JsonValueKind.Object) throw DomainException.Validation($"{name} must be a JSON object of strings.");
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in element.EnumerateObject())
            map[p.Name] = p.Value.ValueKind == JsonValueKind.String
                ? p.Value.GetString()!
                : throw DomainException.Validation($"{name}.{p.Name} must be a string.");
        return map;
    }
}
