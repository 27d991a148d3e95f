using System.Security.Cryptography;
using System.Text;

namespace Kraud.Domain.Common;

/// <summary>
/// Name-based ids (RFC 9562 version 8 layout over SHA-256). Deriving a microVM's id from its pod, replica and
/// generation makes boot commands idempotent: a retried or duplicated command names the same microVM.
/// </summary>
public static class DeterministicId
{
    public static Guid From(params object[] parts)
    {
        var text = string.Join('\u001f', parts.Select(p => p.ToString()));
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(text), hash);
        var bytes = hash[..16].ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }
}
