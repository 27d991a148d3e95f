using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Kraud.Api.Audit;

/// <summary>
/// Checks a JSONL audit export offline: every entry's hash against its content, every link between consecutive
/// entries, and the closing digest's SHA-256 and Ed25519 signature against the platform's public key.
///   dotnet run --project Kraud.Api -- audit verify export.jsonl --key &lt;base64 public key&gt;
///   dotnet run --project Kraud.Api -- audit verify export.jsonl --key-url http://127.0.0.1:8080/.well-known/kraud-audit-key
/// Exit code 0: valid; 1: tampered or unverifiable (the first bad line is named); 2: wrong usage.
/// </summary>
public static class AuditExportVerifier
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public sealed record Result(bool Valid, string Message);

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        if (args.Length < 1 || args[0].StartsWith('-'))
        {
            await output.WriteLineAsync("usage: audit verify <export.jsonl> (--key <base64 Ed25519 public key> | --key-url <url>)");
            return 2;
        }
        byte[] publicKey;
        try
        {
            publicKey = await PublicKeyAsync(args);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or HttpRequestException or JsonException)
        {
            await output.WriteLineAsync($"UNVERIFIABLE: no usable public key: {e.Message}");
            return 2;
        }
        var result = Verify(await File.ReadAllBytesAsync(args[0]), publicKey);
        await output.WriteLineAsync(result.Message);
        return result.Valid ? 0 : 1;
    }

    public static Result Verify(byte[] export, byte[] publicKey)
    {
        var lines = Lines(export);
        if (lines.Count == 0) return new(false, "TAMPERED: the export is empty; it should end with a signed digest.");
        var (digestLine, digestStart) = lines[^1];
        ExportDigest? digest;
        try
        {
            digest = JsonDocument.Parse(digestLine).RootElement.TryGetProperty("digest", out var d) ? d.Deserialize<ExportDigest>(Json) : null;
        }
        catch (JsonException)
        {
            digest = null;
        }
        if (digest is null) return new(false, $"TAMPERED: line {lines.Count} is not the export's signed digest.");

        ExportedEntry? previous = null;
        for (var i = 0; i < lines.Count - 1; i++)
        {
            ExportedEntry? entry;
            try
            {
                entry = JsonSerializer.Deserialize<ExportedEntry>(lines[i].Text, Json);
            }
            catch (Exception e) when (e is JsonException or FormatException)
            {
                return new(false, $"TAMPERED: line {i + 1} is not an audit entry ({e.Message}).");
            }
            if (entry is null) return new(false, $"TAMPERED: line {i + 1} is not an audit entry.");
            if (entry.ToEntry().ComputeHash() != entry.Hash)
                return new(false, $"TAMPERED: line {i + 1} (seq {entry.Seq}): its content does not match its hash.");
            if (previous is not null && entry.Seq == previous.Seq + 1 && entry.PreviousHash != previous.Hash)
                return new(false, $"TAMPERED: line {i + 1} (seq {entry.Seq}): it does not link to the entry before it.");
            if (previous is not null && entry.Seq <= previous.Seq)
                return new(false, $"TAMPERED: line {i + 1} (seq {entry.Seq}): entries are out of order.");
            if (digest.Contiguous && entry.Seq != (previous?.Seq ?? 0) + 1)
                return new(false, $"TAMPERED: line {i + 1} (seq {entry.Seq}): the entry before it (seq {(previous?.Seq ?? 0) + 1}) is missing.");
            previous = entry;
        }

        var sha256 = Convert.ToHexStringLower(SHA256.HashData(export.AsSpan(0, digestStart)));
        if (sha256 != digest.Sha256 || digest.Entries != lines.Count - 1)
            return new(false, $"TAMPERED: the digest on line {lines.Count} does not cover these {lines.Count - 1} lines (lines were changed, added or removed).");
        if (AuditSigningKey.KeyIdOf(publicKey) != digest.KeyId)
            return new(false, $"UNVERIFIABLE: the export was signed with key {digest.KeyId}, not with the key given ({AuditSigningKey.KeyIdOf(publicKey)}).");
        if (!AuditSigningKey.Verify(publicKey, AuditSignatures.Export(digest.Sha256, digest.Entries, digest.Contiguous, digest.HeadSeq, digest.HeadHash, digest.SignedAtUtc), digest.Signature))
            return new(false, $"TAMPERED: the digest's signature on line {lines.Count} is not valid for key {digest.KeyId}.");
        return new(true, $"VALID: {digest.Entries} entries, hashes and links intact, signed by key {digest.KeyId} at {digest.SignedAt:O}.");
    }

    private static List<(string Text, int Start)> Lines(byte[] bytes)
    {
        var lines = new List<(string, int)>();
        var start = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] != (byte)'\n') continue;
            lines.Add((Encoding.UTF8.GetString(bytes, start, i - start), start));
            start = i + 1;
        }
        if (start < bytes.Length) lines.Add((Encoding.UTF8.GetString(bytes, start, bytes.Length - start), start));
        return lines;
    }

    private static async Task<byte[]> PublicKeyAsync(string[] args)
    {
        string? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        if (Option("--key") is { } key) return Convert.FromBase64String(key);
        if (Option("--key-url") is { } url)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            var published = await http.GetFromJsonAsync<PublicKeyResponse>(url, Json) ?? throw new JsonException("empty answer");
            return Convert.FromBase64String(published.PublicKey);
        }
        throw new ArgumentException("give --key <base64> or --key-url <url>", nameof(args));
    }
}
