namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// Label selectors (a=b, a!=b, a in (x,y), a notin (x), a, !a) and field selectors (path=value, path!=value over the
/// object's JSON, e.g. metadata.name, involvedObject.uid, spec.nodeName), as lists and watches take them.
/// </summary>
public sealed record Selectors(IReadOnlyList<Func<Dictionary<string, string>, bool>> Labels, IReadOnlyList<(string Path, string Value, bool Equal)> Fields)
{
    public static Selectors Parse(string? labelSelector, string? fieldSelector)
    {
        var labels = new List<Func<Dictionary<string, string>, bool>>();
        foreach (var term in SplitTerms(labelSelector ?? ""))
        {
            var t = term.Trim();
            if (t.Length == 0) continue;
            if (t.Contains(" notin ", StringComparison.Ordinal) || t.Contains(" in ", StringComparison.Ordinal))
            {
                var notIn = t.Contains(" notin ", StringComparison.Ordinal);
                var parts = t.Split(notIn ? " notin " : " in ", 2);
                var key = parts[0].Trim();
                var values = parts[1].Trim().TrimStart('(').TrimEnd(')').Split(',').Select(v => v.Trim()).ToHashSet();
                labels.Add(notIn ? l => !l.TryGetValue(key, out var v) || !values.Contains(v) : l => l.TryGetValue(key, out var v) && values.Contains(v));
            }
            else if (t.Contains("!=", StringComparison.Ordinal))
            {
                var (key, value) = Split(t, "!=");
                labels.Add(l => !l.TryGetValue(key, out var v) || v != value);
            }
            else if (t.Contains('=', StringComparison.Ordinal))
            {
                var (key, value) = Split(t.Replace("==", "=", StringComparison.Ordinal), "=");
                labels.Add(l => l.TryGetValue(key, out var v) && v == value);
            }
            else if (t.StartsWith('!')) labels.Add(l => !l.ContainsKey(t[1..]));
            else labels.Add(l => l.ContainsKey(t));
        }
        var fields = new List<(string, string, bool)>();
        foreach (var term in (fieldSelector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (term.Contains("!=", StringComparison.Ordinal)) fields.Add((Split(term, "!=").Key, Split(term, "!=").Value, false));
            else fields.Add((Split(term.Replace("==", "=", StringComparison.Ordinal), "=").Key, Split(term.Replace("==", "=", StringComparison.Ordinal), "=").Value, true));
        }
        return new Selectors(labels, fields);
    }

    private static (string Key, string Value) Split(string term, string op)
    {
        var i = term.IndexOf(op, StringComparison.Ordinal);
        return (term[..i].Trim(), term[(i + op.Length)..].Trim());
    }

    /// <summary>Commas separate terms except inside the parentheses of in/notin.</summary>
    private static IEnumerable<string> SplitTerms(string selector)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < selector.Length; i++)
        {
            if (selector[i] == '(') depth++;
            else if (selector[i] == ')') depth--;
            else if (selector[i] == ',' && depth == 0)
            {
                yield return selector[start..i];
                start = i + 1;
            }
        }
        yield return selector[start..];
    }

    public bool Matches(KubeItem item)
    {
        if (Labels.Count > 0)
        {
            var labels = KubeJson.Labels(item.Json);
            if (!Labels.All(l => l(labels))) return false;
        }
        return Fields.All(f => (KubeJson.Text(item.Json, f.Path) ?? "") == f.Value == f.Equal);
    }
}
