using System.Security.Cryptography;
using System.Text.Json;
using Kraud.Domain.Common;
using Marten;

namespace Kraud.Api.Common;

/// <summary>What one host was last sent of one kind of configuration (a hash of it), so an unchanged one is not sent again.</summary>
public sealed class HostPushed
{
    public Guid Id { get; set; }
    public string Kind { get; set; } = "";
    public Guid HostId { get; set; }
    public long Revision { get; set; }
    public string Hash { get; set; } = "";
}

/// <summary>
/// The send-if-changed step of configurations the control plane pushes to hosts (ingress proxies' sites, data planes'
/// service discovery): each push has a revision that only grows, so a host applies only a newer one than it holds.
/// </summary>
public sealed class HostPushes
{
    private readonly IDocumentSession session;
    private readonly string kind;
    private readonly Dictionary<Guid, HostPushed> last;

    private HostPushes(IDocumentSession session, string kind, Dictionary<Guid, HostPushed> last) => (this.session, this.kind, this.last) = (session, kind, last);

    public static async Task<HostPushes> LoadAsync(IDocumentSession session, string kind, IEnumerable<Guid> hostIds) =>
        new(session, kind, (await session.LoadManyAsync<HostPushed>(hostIds.Select(h => IdFor(kind, h)).ToArray())).ToDictionary(p => p.HostId));

    private static Guid IdFor(string kind, Guid hostId) => DeterministicId.From("host-push", kind, hostId);

    /// <summary>
    /// The revision to send <paramref name="content"/> to the host with, recorded in the session's transaction; null when
    /// the host was last sent the same. Revisions are ticks of the deciding clock (one sequential queue decides) or the
    /// last one plus one, whichever is greater.
    /// </summary>
    public long? Next(Guid hostId, object content, DateTimeOffset now)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(content)));
        var before = last.GetValueOrDefault(hostId);
        if (before?.Hash == hash) return null;
        var revision = Math.Max((before?.Revision ?? 0) + 1, now.UtcTicks);
        var pushed = new HostPushed { Id = IdFor(kind, hostId), Kind = kind, HostId = hostId, Revision = revision, Hash = hash };
        session.Store(pushed);
        last[hostId] = pushed;
        return revision;
    }
}
