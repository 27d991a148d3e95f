using System.Security.Cryptography;
using System.Text;

namespace Kraud.Api.Common;

/// <summary>
/// The ids a request gives the resources it creates. A request sent with an Idempotency-Key gets ids derived from the
/// key: when the first attempt's answer was lost (its node died after the commit), the retry that runs it again names the
/// same resources, so the deciders see a create of what exists already instead of a second resource.
/// </summary>
public sealed class RequestIds(string? seed)
{
    private const string ItemKey = "kraud.request-id-seed";
    private int _next;

    /// <summary>The seed the idempotency middleware put on the request, if the request has a key.</summary>
    public static RequestIds Of(HttpContext http) => new(http.Items[ItemKey] as string);

    public static void Seed(HttpContext http, string seed) => http.Items[ItemKey] = seed;

    public Guid Next()
    {
        var n = Interlocked.Increment(ref _next);
        if (seed is null) return Guid.NewGuid();
        // A name-based (version 5 style) UUID: the same seed and ordinal give the same id on every node.
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}#{n}"), hash);
        var bytes = hash[..16].ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x50);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }
}
