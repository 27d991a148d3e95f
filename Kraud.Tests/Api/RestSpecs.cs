using System.Text.Json;
using Kraud.Api.Access;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class RestSpecs(KraudApp app)
{
    [Fact]
    public async Task health_reports_the_database_the_async_daemon_and_projection_lag()
    {
        var result = await app.Host.Scenario(s =>
        {
            s.Get.Url("/health");
            s.StatusCodeShouldBe(200);
        });
        var health = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement;
        Assert.Equal("healthy", health.GetProperty("status").GetString());
        Assert.True(health.GetProperty("database").GetBoolean());
        Assert.True(health.GetProperty("asyncDaemon").GetBoolean());
        Assert.Contains(health.GetProperty("projections").EnumerateArray(), p => p.GetProperty("name").GetString()!.StartsWith("AuditChain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task the_openapi_document_describes_the_rest_endpoints()
    {
        var result = await app.Host.Scenario(s =>
        {
            s.Get.Url("/swagger/v1/swagger.json");
            s.StatusCodeShouldBe(200);
        });
        var doc = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement;
        Assert.True(doc.GetProperty("paths").TryGetProperty("/health", out _));
    }

    [Fact]
    public async Task a_first_start_without_any_operator_token_issues_one_and_writes_it_to_the_state_directory()
    {
        var bootstrap = app.Host.Services.GetRequiredService<OperatorBootstrap>();
        var path = Path.Combine(app.StateDirectory, "first-start", OperatorBootstrap.TokenFile);

        var secret = await bootstrap.EnsureOperatorTokenAsync(path, CancellationToken.None);
        Assert.NotNull(secret);
        Assert.Equal(secret, (await File.ReadAllTextAsync(path)).Trim());
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var me = (await app.Host.GraphQL(secret, "{ me { role } }")).ShouldSucceed();
        Assert.Equal("OPERATOR", me.Data.GetProperty("me").GetProperty("role").GetString());

        Assert.Null(await bootstrap.EnsureOperatorTokenAsync(Path.Combine(app.StateDirectory, "second", OperatorBootstrap.TokenFile), CancellationToken.None));
    }
}
