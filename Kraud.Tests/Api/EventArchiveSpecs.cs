using System.IO.Compression;
using System.Text.Json;
using Kraud.Api.Audit;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

/// <summary>Archives of the event log: written by the platform, checked offline by the CLI with only the platform's public key.</summary>
[Collection(ApiCollection.Name)]
public sealed class EventArchiveSpecs(KraudApp app) : IDisposable
{
    private readonly KraudCli _cli = new();

    private string PublicKey => Convert.ToBase64String(app.Host.Services.GetRequiredService<AuditSigningKey>().PublicKey);

    private async Task<JsonElement> ArchiveNowAsync()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("archived");
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        (await app.AsOperator("mutation { signAuditDigest { seq } }")).ShouldSucceed();
        await Task.Delay(10); // the signed head's entry is older than the instant archived up to
        return (await app.AsOperator("mutation($b: DateTime) { archiveEvents(before: $b) { file fromSeq toSeq events fromEntry toEntry headHash boundary bytes } }",
            new { b = DateTime.UtcNow })).ShouldSucceed().Data.GetProperty("archiveEvents");
    }

    private static async Task<List<string>> LinesAsync(string file)
    {
        await using var gz = new GZipStream(File.OpenRead(file), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        var lines = new List<string>();
        while (await reader.ReadLineAsync() is { } line) lines.Add(line);
        return lines;
    }

    private async Task<string> WriteAsync(IEnumerable<string> lines)
    {
        var file = Path.Combine(_cli.Home, $"edited-{Guid.NewGuid():N}.jsonl.gz");
        await using var gz = new GZipStream(File.Create(file), CompressionLevel.Fastest);
        await using var writer = new StreamWriter(gz) { NewLine = "\n" };
        foreach (var line in lines) await writer.WriteLineAsync(line);
        return file;
    }

    [Fact]
    public async Task an_archive_of_the_events_verifies_offline_with_the_platforms_key_and_an_edited_line_fails_at_that_line()
    {
        var archive = await ArchiveNowAsync();
        var file = archive.GetProperty("file").GetString()!;
        Assert.True(File.Exists(file));
        Assert.EndsWith(".jsonl.gz", file);
        Assert.Equal(new FileInfo(file).Length, archive.GetProperty("bytes").GetDouble());
        Assert.True(archive.GetProperty("events").GetInt64() > 0);
        Assert.Equal(archive.GetProperty("toSeq").GetInt64() - archive.GetProperty("fromSeq").GetInt64() + 1, archive.GetProperty("events").GetInt64());

        // The CLI with a key and no context: nothing but the file and the platform's public key.
        var verified = (await _cli.RunAsync("audit", "verify-archive", file, "--key", PublicKey)).ShouldSucceed();
        Assert.StartsWith("VALID: ", verified.Stdout);

        var lines = await LinesAsync(file);
        var eventLine = lines.FindIndex(l => l.Contains("\"event\":{", StringComparison.Ordinal) && l.Contains("\"archived\"", StringComparison.Ordinal));
        Assert.True(eventLine > 0, "the archive holds the pod's events with their bodies");
        var edited = lines.ToList();
        edited[eventLine] = edited[eventLine].Replace("\"archived\"", "\"renamed\"", StringComparison.Ordinal);
        Assert.NotEqual(lines[eventLine], edited[eventLine]);
        var tampered = await _cli.RunAsync("audit", "verify-archive", await WriteAsync(edited), "--key", PublicKey);
        Assert.Equal(1, tampered.ExitCode);
        Assert.StartsWith($"error: TAMPERED: line {eventLine + 1}:", tampered.Stderr);

        // An entry whose line hash was recomputed after the edit still fails on its own hash, at its line.
        var entryLine = lines.FindIndex(l => l.Contains("\"entry\":{", StringComparison.Ordinal));
        var json = lines[entryLine][65..].Replace("\"outcome\":\"", "\"outcome\":\"x", StringComparison.Ordinal);
        var previousHash = entryLine == 0 ? Kraud.Projections.Audit.AuditEntry.Genesis : lines[entryLine - 1][..64];
        edited = lines.ToList();
        edited[entryLine] = $"{Kraud.Api.Audit.EventArchiveFormat.NextHash(previousHash, json)} {json}";
        var rehashed = await _cli.RunAsync("audit", "verify-archive", await WriteAsync(edited), "--key", PublicKey);
        Assert.Equal(1, rehashed.ExitCode);
        Assert.Contains($"TAMPERED: line {entryLine + 1}", rehashed.Stderr);

        // An event whose type was changed and the whole line chain recomputed after it (every line hash matches) is no
        // longer the event its "recorded" entry names: found at the event's line.
        edited = lines.ToList();
        var original = edited[eventLine][65..];
        var typeAt = original.IndexOf("\"type\":\"", StringComparison.Ordinal) + 8;
        var renamed = original[..typeAt] + "pod_renamed" + original[original.IndexOf('"', typeAt)..];
        Assert.NotEqual(edited[eventLine][65..], renamed);
        edited[eventLine] = $"{edited[eventLine - 1][..64]} {renamed}";
        for (var i = eventLine; i < edited.Count - 1; i++)
            edited[i] = $"{Kraud.Api.Audit.EventArchiveFormat.NextHash(i == 0 ? Kraud.Projections.Audit.AuditEntry.Genesis : edited[i - 1][..64], edited[i][65..])} {edited[i][65..]}";
        var retyped = await _cli.RunAsync("audit", "verify-archive", await WriteAsync(edited), "--key", PublicKey);
        Assert.Equal(1, retyped.ExitCode);
        Assert.Contains($"TAMPERED: line {eventLine + 1} (event ", retyped.Stderr);
        Assert.Contains("is not the event entry", retyped.Stderr);

        // Cut short (its digest and seal gone), it fails: the verifier streams the file and takes its last line for the seal.
        var cut = await _cli.RunAsync("audit", "verify-archive", await WriteAsync(lines.Take(lines.Count - 2)), "--key", PublicKey);
        Assert.Equal(1, cut.ExitCode);
        Assert.Contains("TAMPERED", cut.Stderr);

        // Another platform's key does not vouch for it.
        using var other = NSec.Cryptography.Key.Create(NSec.Cryptography.SignatureAlgorithm.Ed25519);
        var foreign = await _cli.RunAsync("audit", "verify-archive", file, "--key",
            Convert.ToBase64String(other.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey)));
        Assert.Equal(1, foreign.ExitCode);
        Assert.Contains("UNVERIFIABLE", foreign.Stderr);
    }

    [Fact]
    public async Task the_next_archive_starts_where_the_last_one_ended_and_links_to_its_head()
    {
        var first = await ArchiveNowAsync();
        var second = await ArchiveNowAsync();
        Assert.Equal(first.GetProperty("toSeq").GetInt64() + 1, second.GetProperty("fromSeq").GetInt64());
        Assert.Equal(first.GetProperty("toEntry").GetInt64() + 1, second.GetProperty("fromEntry").GetInt64());
        (await _cli.RunAsync("audit", "verify-archive", second.GetProperty("file").GetString()!, "--key", PublicKey)).ShouldSucceed();
        var records = await app.Store.QuerySession().Query<Kraud.Projections.Audit.EventArchiveRecord>().CountAsync();
        Assert.True(records >= 2);
    }

    [Fact]
    public async Task archiving_takes_an_operator_a_past_instant_and_a_signed_digest_before_it()
    {
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql("mutation { archiveEvents { file } }")).ShouldFailWith("FORBIDDEN");
        (await app.AsOperator("mutation($b: DateTime) { archiveEvents(before: $b) { file } }", new { b = DateTime.UtcNow.AddHours(1) })).ShouldFailWith("VALIDATION");
        (await app.AsOperator("mutation($b: DateTime) { archiveEvents(before: $b) { file } }", new { b = new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc) }))
            .ShouldFailWith("PRECONDITION");
    }

    public void Dispose() => _cli.Dispose();
}
