using Kraud.Projections.Fleet;
using Marten;

namespace Kraud.Api.Common;

public static class ZoneNames
{
    /// <summary>The zones the platform has (from its hosts' registrations): what a zone a user names must be one of.</summary>
    public static async Task<IReadOnlyList<string>> AllAsync(IQuerySession session, CancellationToken ct) =>
        (await session.Query<ZoneView>().Select(z => z.Name).ToListAsync(ct)).Order(StringComparer.Ordinal).ToList();
}
