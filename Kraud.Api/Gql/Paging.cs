using System.Text;
using Kraud.Domain.Common;

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
        Decode(cursor, 1) is [var position] ? long.TryParse(position, out var p) ? p : throw DomainException.Validation($"after '{cursor}' is not a cursor this API handed out.") : 0;
}
