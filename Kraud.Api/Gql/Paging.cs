using System.Linq.Expressions;
using System.Text;
using GraphQL;
using Kraud.Domain.Common;
using Marten;
using Marten.Linq.MatchesSql;

namespace Kraud.Api.Gql;

public sealed record PageInfo(bool HasNextPage, string? EndCursor);

/// <summary>Opaque cursors: the sort key of the last row a page returned, base64-encoded so clients do not build them.</summary>
public static class Cursor
{
    public static string Encode(params object[] key) => Convert.ToBase64String(Encoding.UTF8.GetBytes(string.Join('|', key)));

    /// <summary>The key parts of a cursor this API handed out; null when there is none.</summary>
    public static string[]? Decode(string? cursor, int parts)
    {
        if (string.IsNullOrEmpty(cursor)) return null;
        try
        {
            var key = Encoding.UTF8.GetString(Convert.FromBase64String(cursor)).Split('|');
            if (key.Length == parts) return key;
        }
        catch (FormatException)
        {
        }
        throw DomainException.Validation($"after '{cursor}' is not a cursor this API handed out.");
    }

    public static long DecodePosition(string? cursor) =>
        Decode(cursor, 1) is [var position] ? long.TryParse(position, CultureInfo.InvariantCulture, out var p) ? p : throw DomainException.Validation($"after '{cursor}' is not a cursor this API handed out.") : 0;
}

/// <summary>
/// first/after pages of read models in creation order (creation ticks, then id): keyset paging, so a page is one index
/// range read however deep it is, and rows added meanwhile neither repeat nor shift the next page.
/// </summary>
public static class CreationOrderPages
{
    public const int MaxPageSize = 500;

    public sealed record Page<T>(IReadOnlyList<T> Nodes, PageInfo PageInfo, int TotalCount);

    public static async Task<Page<T>> ReadAsync<T>(IResolveFieldContext ctx, IQueryable<T> query, string what,
        Expression<Func<T, long>> createdTicks, Expression<Func<T, Guid>> id) where T : notnull
    {
        var first = ctx.GetArgument<int?>("first") ?? 50;
        Names.RequireRange(first, 1, MaxPageSize, "first");
        var after = Cursor.Decode(ctx.GetArgument<string?>("after"), 2);
        var total = await query.CountAsync(ctx.CancellationToken);
        if (after is [var ticks, var last])
        {
            if (!long.TryParse(ticks, CultureInfo.InvariantCulture, out var t) || !Guid.TryParse(last, out var g)) throw DomainException.Validation($"after is not a {what} cursor.");
            query = query.Where(x => x.MatchesSql("(cast(d.data ->> 'CreatedTicks' as bigint), d.id) > (?, ?)", t, g));
        }
        var page = await query.OrderBy(createdTicks).ThenBy(id).Take(first + 1).ToListAsync(ctx.CancellationToken);
        var nodes = page.Take(first).ToList();
        var (ticksOf, idOf) = (createdTicks.Compile(), id.Compile());
        return new Page<T>(nodes, new PageInfo(page.Count > first, nodes.Count == 0 ? null : Cursor.Encode(ticksOf(nodes[^1]), idOf(nodes[^1]))), total);
    }
}
