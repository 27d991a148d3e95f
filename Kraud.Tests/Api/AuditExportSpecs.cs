using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Alba;
using Kraud.Api.Audit;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.Tests.Infrastructure;
using Marten.Events;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class AuditExportSpecs(KraudApp app)
{
    private async Task<byte[]> PublicKeyAsync()
    {
        var result = await app.Host.Scenario(s => { s.Get.Url(AuditPublicKeyEndpoint.Route); s.StatusCodeShouldBe(200); });
        var key = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement;
        Assert.Equal("Ed25519", key.GetProperty("algorithm").GetString());
        return Convert.FromBase64String(key.GetProperty("publicKey").GetString()!);
    }

    private async Task<(int Status, byte[] Body, IScenarioResult Result)> ExportAsync(string? token, string query)
    {
        var result = await app.Host.Scenario(s =>
        {
            s.Get.Url("/api/exports/audit" + query);
            if (token is not null) s.WithRequestHeader("Authorization", $"Bearer {token}");
            s.IgnoreStatusCode();
        });
        using var buffer = new MemoryStream();
        await result.Context.Response.Body.CopyToAsync(buffer);
        return (result.Context.Response.StatusCode, buffer.ToArray(), result);
    }

    private async Task<TenantScope> TenantWithHistoryAsync()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("exported");
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        await app.Store.WaitForNonStaleProjectionDataAsync(TimeSpan.FromSeconds(30));
        return tenant;
    }

    private static byte[] EditLine(byte[] export, int lineIndex, Func<string, string> change)
    {
        var lines = Encoding.UTF8.GetString(export).Split('\n').ToList();
        lines[lineIndex] = change(lines[lineIndex]);
        return Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }

    [Fact]
    public async Task a_jsonl_export_verifies_offline_and_the_first_tampered_line_is_named()
    {
        await TenantWithHistoryAsync();
        var (status, export, result) = await ExportAsync(KraudApp.OperatorToken, "?format=jsonl");
        Assert.Equal(200, status);
        Assert.StartsWith("application/x-ndjson", result.Context.Response.ContentType);
        var key = await PublicKeyAsync();
        var valid = AuditExportVerifier.Verify(export, key);
        Assert.True(valid.Valid, valid.Message);

        var edited = AuditExportVerifier.Verify(EditLine(export, 2, l => l.Replace("\"actor\":\"", "\"actor\":\"x")), key);
        Assert.False(edited.Valid);
        Assert.StartsWith("TAMPERED: line 3 (seq 3)", edited.Message);

        var lines = Encoding.UTF8.GetString(export).Split('\n').ToList();
        lines.RemoveAt(4);
        var removed = AuditExportVerifier.Verify(Encoding.UTF8.GetBytes(string.Join('\n', lines)), key);
        Assert.False(removed.Valid);
        Assert.StartsWith("TAMPERED: line 5 (seq 6)", removed.Message);

        var forged = AuditExportVerifier.Verify(EditLine(export, lines.Count - 1, l => l.Replace("\"signature\":\"", "\"signature\":\"AA")), key);
        Assert.False(forged.Valid);

        var otherKey = Kraud.Api.Audit.AuditSigningKey.KeyIdOf(RandomNumberGenerator.GetBytes(32));
        Assert.NotEqual(otherKey, Kraud.Api.Audit.AuditSigningKey.KeyIdOf(key));
        Assert.False(AuditExportVerifier.Verify(export, RandomNumberGenerator.GetBytes(32)).Valid);
    }

    [Fact]
    public async Task a_tenant_exports_only_its_own_entries_and_members_cannot_export()
    {
        var tenant = await TenantWithHistoryAsync();
        var (status, export, _) = await ExportAsync(tenant.Token, "?format=jsonl");
        Assert.Equal(200, status);
        var entries = Encoding.UTF8.GetString(export).Split('\n', StringSplitOptions.RemoveEmptyEntries).SkipLast(1)
            .Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.NotEmpty(entries);
        Assert.All(entries, e => Assert.Equal(tenant.Id.ToString(), e.GetProperty("tenantId").GetString()));
        Assert.True(AuditExportVerifier.Verify(export, await PublicKeyAsync()).Valid);

        Assert.Equal(403, (await ExportAsync(await tenant.TokenAsync("MEMBER"), "?format=jsonl")).Status);
        Assert.Equal(401, (await ExportAsync(null, "?format=jsonl")).Status);
        Assert.Equal(400, (await ExportAsync(tenant.Token, "?format=xml")).Status);
    }

    [Fact]
    public async Task a_csv_export_links_to_a_signed_digest_of_its_exact_bytes()
    {
        await TenantWithHistoryAsync();
        var (status, csv, result) = await ExportAsync(KraudApp.OperatorToken, "?format=csv");
        Assert.Equal(200, status);
        var text = Encoding.UTF8.GetString(csv);
        Assert.StartsWith("seq,eventSeq,at,tenantId,actor", text);
        var link = result.Context.Response.Headers.Link.ToString();
        Assert.EndsWith("rel=\"signature\"", link);
        var url = link[(link.IndexOf('<') + 1)..link.IndexOf('>')];

        var digestResult = await app.Host.Scenario(s =>
        {
            s.Get.Url(url);
            s.WithRequestHeader("Authorization", $"Bearer {KraudApp.OperatorToken}");
            s.StatusCodeShouldBe(200);
        });
        var digest = JsonSerializer.Deserialize<ExportDigest>(await digestResult.ReadAsTextAsync(), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(csv)), digest.Sha256);
        Assert.True(Kraud.Api.Audit.AuditSigningKey.Verify(await PublicKeyAsync(),
            AuditSignatures.Export(digest.Sha256, digest.Entries, digest.Contiguous, digest.HeadSeq, digest.HeadHash, digest.SignedAtUtc), digest.Signature));
    }

    [Fact]
    public async Task the_head_of_the_chain_can_be_signed_and_checked_with_the_published_key()
    {
        await TenantWithHistoryAsync();
        var digest = (await app.AsOperator("mutation { signAuditDigest { seq headHash signedAt keyId signature } }")).ShouldSucceed().Data.GetProperty("signAuditDigest");
        var signedAt = digest.GetProperty("signedAt").GetDateTimeOffset();
        Assert.True(Kraud.Api.Audit.AuditSigningKey.Verify(await PublicKeyAsync(),
            AuditSignatures.Digest(digest.GetProperty("seq").GetInt64(), digest.GetProperty("headHash").GetString()!, signedAt),
            digest.GetProperty("signature").GetString()!), "the published key verifies the digest as the API returned it");
        var listed = (await app.AsOperator("{ auditDigests(first: 5) { seq } }")).ShouldSucceed().Data.GetProperty("auditDigests");
        Assert.Contains(listed.EnumerateArray(), d => d.GetProperty("seq").GetInt64() == digest.GetProperty("seq").GetInt64());
    }

    [Fact]
    public async Task the_offline_verifier_is_a_command_of_kraud_api()
    {
        await TenantWithHistoryAsync();
        var (_, export, _) = await ExportAsync(KraudApp.OperatorToken, "?format=jsonl");
        var file = Path.Combine(app.StateDirectory, $"export-{Guid.NewGuid():N}.jsonl");
        await File.WriteAllBytesAsync(file, export);
        var key = Convert.ToBase64String(await PublicKeyAsync());

        var (code, output) = await RunVerifierAsync(file, key);
        Assert.Equal(0, code);
        Assert.StartsWith("VALID", output);

        await File.WriteAllBytesAsync(file, EditLine(export, 1, l => l.Replace("\"outcome\":\"", "\"outcome\":\"not-")));
        (code, output) = await RunVerifierAsync(file, key);
        Assert.Equal(1, code);
        Assert.StartsWith("TAMPERED: line 2", output);
    }

    private static async Task<(int Code, string Output)> RunVerifierAsync(string file, string key)
    {
        var result = await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "Kraud.Api.dll"), "audit", "verify", file, "--key", key],
            TimeSpan.FromMinutes(2), CancellationToken.None);
        return (result.ExitCode, result.Output.Trim());
    }
}
