using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class ComplianceSpecs(KraudApp app)
{
    private const string Record = "mutation($in: DatacenterAccessInput!) { recordDatacenterAccess(input: $in) { id person at datacenter reason cameraSnapshotSha256 } }";
    private static readonly string Snapshot = new('a', 64);

    [Fact]
    public async Task physical_access_is_recorded_by_operators_with_a_camera_snapshot_hash()
    {
        var at = DateTime.UtcNow.AddMinutes(-3);
        var recorded = (await app.AsOperator(Record, new { @in = new { person = "Jane Tech", at, datacenter = "FSN1-DC2", reason = "replace a disk in rack a1", cameraSnapshotSha256 = Snapshot } }))
            .ShouldSucceed().Data.GetProperty("recordDatacenterAccess");
        Assert.Equal("Jane Tech", recorded.GetProperty("person").GetString());
        var log = (await app.AsOperator("query($f: DateTime) { datacenterAccessLog(datacenter: \"FSN1-DC2\", from: $f) { id person } }", new { f = at.AddSeconds(-1) }))
            .ShouldSucceed().Data.GetProperty("datacenterAccessLog");
        Assert.Contains(log.EnumerateArray(), a => a.Id() == recorded.Id());

        (await app.AsOperator(Record, new { @in = new { person = "x", at, datacenter = "NBG1-DC3", reason = "r", cameraSnapshotSha256 = Snapshot } })).ShouldFailWith("VALIDATION");
        (await app.AsOperator(Record, new { @in = new { person = "x", at, datacenter = "FSN1-DC2", reason = "r", cameraSnapshotSha256 = "abc" } })).ShouldFailWith("VALIDATION");
        (await app.AsOperator(Record, new { @in = new { person = "x", at = DateTime.UtcNow.AddHours(1), datacenter = "FSN1-DC2", reason = "r", cameraSnapshotSha256 = Snapshot } }))
            .ShouldFailWith("VALIDATION");
        var tenant = await TenantScope.CreateAsync(app);
        (await tenant.Gql(Record, new { @in = new { person = "x", at, datacenter = "FSN1-DC2", reason = "r", cameraSnapshotSha256 = Snapshot } })).ShouldFailWith("FORBIDDEN");
        (await tenant.Gql("{ datacenterAccessLog { id } }")).ShouldFailWith("FORBIDDEN");
    }

    [Fact]
    public async Task the_compliance_report_shows_each_resources_isolation_barrier_and_the_access_log()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("evidence");
        var secret = await tenant.CreatePodAsync("sealed", confidential: true);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        await tenant.WaitForPodAsync(secret.Id(), "RUNNING");
        (await app.AsOperator(Record, new { @in = new { person = "Auditor Visit", at = DateTime.UtcNow.AddMinutes(-1), datacenter = "FSN1-DC2", reason = "audit walk", cameraSnapshotSha256 = Snapshot } }))
            .ShouldSucceed();

        var auditor = await tenant.TokenAsync("AUDITOR");
        var result = await app.Host.Scenario(s =>
        {
            s.Get.Url("/api/exports/compliance-report?format=json");
            s.WithRequestHeader("Authorization", $"Bearer {auditor}");
            s.StatusCodeShouldBe(200);
        });
        var report = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement;
        var tenants = report.GetProperty("tenants").EnumerateArray().ToList();
        var mine = Assert.Single(tenants);
        Assert.Equal(tenant.Id.ToString(), mine.GetProperty("id").GetString());
        var resources = mine.GetProperty("resources").EnumerateArray().ToDictionary(r => r.GetProperty("id").GetString()!);
        Assert.Equal("microVM + VPC", resources[pod.Id()].GetProperty("isolationBarrier").GetString());
        Assert.Equal("AMD SEV-SNP", resources[secret.Id()].GetProperty("isolationBarrier").GetString());
        Assert.Equal(["FSN1-DC2"], mine.GetProperty("datacenters").EnumerateArray().Select(d => d.GetString()));
        Assert.Contains(report.GetProperty("datacenterAccess").EnumerateArray(), a => a.GetProperty("person").GetString() == "Auditor Visit");

        var html = await app.Host.Scenario(s =>
        {
            s.Get.Url("/api/exports/compliance-report?format=html");
            s.WithRequestHeader("Authorization", $"Bearer {auditor}");
            s.StatusCodeShouldBe(200);
        });
        Assert.StartsWith("text/html", html.Context.Response.ContentType);
        var text = await html.ReadAsTextAsync();
        Assert.Contains("AMD SEV-SNP", text);
        Assert.Contains(tenant.Name, text);

        var member = await tenant.TokenAsync("MEMBER");
        var forbidden = await app.Host.Scenario(s =>
        {
            s.Get.Url("/api/exports/compliance-report");
            s.WithRequestHeader("Authorization", $"Bearer {member}");
            s.StatusCodeShouldBe(403);
        });
        Assert.Contains("FORBIDDEN", await forbidden.ReadAsTextAsync());
    }
}
