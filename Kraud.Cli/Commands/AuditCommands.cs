using System.CommandLine;
using System.Net.Http.Json;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;
using Spectre.Console;
using AuditExportVerifier = Kraud.Api.Audit.AuditExportVerifier;
using PublicKeyResponse = Kraud.Api.Audit.PublicKeyResponse;

namespace Kraud.Cli.Commands;

/// <summary>kraud audit log|export|verify|verify-archive</summary>
public static class AuditCommands
{
    private static readonly Option<DateTime?> From = new("--from") { Description = "From this instant (ISO-8601, UTC)" };
    private static readonly Option<DateTime?> To = new("--to") { Description = "Up to this instant (ISO-8601, UTC)" };
    private static readonly Option<string?> Tenant = new("--tenant") { Description = "One tenant's entries (operators, platform auditors)" };

    public static Command Build() => new Command("audit", "The tamper-evident audit log").With(Log(), Export(), Verify(), VerifyArchive());

    private static Command Log()
    {
        var limit = new Option<int>("--limit", "-n") { Description = "Entries to show", DefaultValueFactory = _ => 50 };
        var cmd = new Command("log", "Audit entries, oldest first").With(From, To, Tenant, limit);
        cmd.Does(async c =>
        {
            var page = await c.RunAsync(AuditApi.Log, new { from = c.Get(From), to = c.Get(To), tenantId = c.Get(Tenant), first = c.Get(limit) });
            c.Output.List(page.Nodes, new Column<AuditEntry>("SEQ", e => e.Seq.ToString(CultureInfo.InvariantCulture)), new("AT", e => Output.Time(e.At)),
                new("ACTOR", e => e.Actor), new("ACTION", e => e.Action), new("RESOURCE", e => e.ResourceId), new("OUTCOME", e => e.Outcome),
                new("HASH", e => e.Hash[..12]));
        });
        return cmd;
    }

    private static Command Export()
    {
        var file = new Option<FileInfo?>("--file", "-f") { Description = "Write the export here (default: stdout)" };
        var format = new Option<string>("--format") { Description = "jsonl (ends with a signed digest) or csv", DefaultValueFactory = _ => "jsonl" };
        format.AcceptOnlyFromAmong("jsonl", "csv");
        var cmd = new Command("export", "Download the audit log with its hashes and a signed digest").With(file, format, From, To, Tenant);
        cmd.Does(async c =>
        {
            var query = new List<string> { $"format={c.Get(format)}" };
            if (c.Get(Tenant) is { } t) query.Add($"tenantId={Uri.EscapeDataString(t)}");
            if (c.Get(From) is { } f) query.Add($"from={Uri.EscapeDataString(f.ToUniversalTime().ToString("O"))}");
            if (c.Get(To) is { } to) query.Add($"to={Uri.EscapeDataString(to.ToUniversalTime().ToString("O"))}");
            using var response = await c.Client.GetAsync("api/exports/audit?" + string.Join('&', query), c.Cancellation);
            await using var source = await response.Content.ReadAsStreamAsync(c.Cancellation);
            var target = c.Get(file);
            await using var sink = target is null ? Console.OpenStandardOutput() : target.Create();
            var copied = new Copied();
            // Progress only for a person watching a file being written: on stdout the export itself is the output.
            if (target is not null && c.Output.IsTerminal)
                await c.Output.Console.Status().StartAsync("exporting…", async status =>
                    await CopyAsync(source, sink, copied, () => status.Status($"exporting: {copied.Entries} entries, {Bytes(copied.Bytes)}"), c.Cancellation));
            else await CopyAsync(source, sink, copied, () => { }, c.Cancellation);
            if (target is not null)
            {
                // The last JSONL line is the digest, not an entry.
                var entries = copied.Entries - 1; // JSONL: the digest line; CSV: the header line
                c.Output.Done(new { file = target.FullName, entries, bytes = copied.Bytes }, $"exported {entries} entries ({Bytes(copied.Bytes)}) to {target.FullName}");
            }
        });
        return cmd;
    }

    private sealed class Copied
    {
        public long Bytes;
        public long Entries;
    }

    private static async Task CopyAsync(Stream source, Stream sink, Copied copied, Action progress, CancellationToken ct)
    {
        var buffer = new byte[81920];
        var lastReport = DateTime.MinValue;
        int read;
        while ((read = await source.ReadAsync(buffer, ct)) > 0)
        {
            await sink.WriteAsync(buffer.AsMemory(0, read), ct);
            copied.Bytes += read;
            copied.Entries += buffer.AsSpan(0, read).Count((byte)'\n');
            if (DateTime.UtcNow - lastReport > TimeSpan.FromMilliseconds(100))
            {
                progress();
                lastReport = DateTime.UtcNow;
            }
        }
        progress();
    }

    private static Command Verify()
    {
        var file = new Argument<FileInfo?>("file") { Description = "A JSONL export to check offline (without: Kraud checks its whole chain)", Arity = ArgumentArity.ZeroOrOne };
        var key = new Option<string?>("--key") { Description = "The platform's Ed25519 public key, base64 (default: fetched from the current context)" };
        var cmd = new Command("verify", "Check the audit chain: on the server, or an export file offline").With(file, key, Tenant);
        cmd.Does(async c =>
        {
            if (c.Get(file) is not { } export)
            {
                var v = await c.RunAsync(AuditApi.Verify, new { tenantId = c.Get(Tenant) });
                c.Output.One(v, new Column<AuditVerification>("VALID", x => x.Valid ? "true" : "false"), new("ENTRIES", x => x.Entries.ToString(CultureInfo.InvariantCulture)),
                    new("FIRST BROKEN", x => x.FirstBrokenSeq?.ToString(CultureInfo.InvariantCulture)), new("HEAD", x => x.HeadHash));
                if (!v.Valid) throw new KraudApiException("TAMPERED", $"the audit chain is broken at entry {v.FirstBrokenSeq}");
                return;
            }
            if (!export.Exists) throw new CliException($"{export.FullName} does not exist.");
            var publicKey = c.Get(key) is { } k ? Convert.FromBase64String(k) : await PlatformKeyAsync(c);
            var result = AuditExportVerifier.Verify(await File.ReadAllBytesAsync(export.FullName, c.Cancellation), publicKey);
            if (!result.Valid) throw new KraudApiException(result.Message.Split(':')[0], result.Message[(result.Message.IndexOf(':') + 1)..].Trim());
            c.Output.Done(new { valid = true, message = result.Message }, result.Message);
        });
        return cmd;
    }

    private static Command VerifyArchive()
    {
        var file = new Argument<FileInfo>("file") { Description = "An event archive (.jsonl.gz) that archiveEvents wrote" };
        var key = new Option<string?>("--key") { Description = "The platform's Ed25519 public key, base64 (default: fetched from the current context)" };
        var cmd = new Command("verify-archive", "Check an event archive offline: line hashes, the audit chain, the signed digest and the seal").With(file, key);
        cmd.Does(async c =>
        {
            var archive = c.Get(file)!;
            if (!archive.Exists) throw new CliException($"{archive.FullName} does not exist.");
            var publicKey = c.Get(key) is { } k ? Convert.FromBase64String(k) : await PlatformKeyAsync(c);
            await using var stream = archive.OpenRead();
            var result = Kraud.Api.Audit.EventArchiveVerifier.Verify(stream, publicKey);
            if (!result.Valid) throw new KraudApiException(result.Message.Split(':')[0], result.Message[(result.Message.IndexOf(':') + 1)..].Trim());
            c.Output.Done(new { valid = true, message = result.Message }, result.Message);
        });
        return cmd;
    }

    private static async Task<byte[]> PlatformKeyAsync(CommandContext c)
    {
        using var response = await c.Client.GetAsync(".well-known/kraud-audit-key", c.Cancellation);
        var published = await response.Content.ReadFromJsonAsync<PublicKeyResponse>(KraudClient.Json, c.Cancellation)
                        ?? throw new KraudApiException("UNVERIFIABLE", "Kraud published no audit key");
        return Convert.FromBase64String(published.PublicKey);
    }

    private static string Bytes(long n) => n < 1024 * 1024 ? $"{n / 1024.0:0.0} KiB" : $"{n / 1024.0 / 1024.0:0.0} MiB";
}
