using System.Net;
using System.Net.Sockets;
using Kraud.Api.Common;
using Kraud.Api.Health;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Kraud.Tests.Api;

/// <summary>The database check behind /health is the Npgsql health check as the Health slice registers it, against a real server.</summary>
public class HealthCheckSpecs
{
    private static async Task<HealthReport> CheckAsync(string connectionString)
    {
        var services = new ServiceCollection().AddLogging().AddSingleton(new KraudDatabase(connectionString, false, "test"));
        new HealthSlice().AddServices(services);
        await using var provider = services.BuildServiceProvider();
        return await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(c => c.Name == HealthSlice.Database);
    }

    [Fact]
    public async Task a_database_that_answers_is_healthy()
    {
        var report = await CheckAsync(await TestDatabase.CreateAsync("health"));
        Assert.Equal(HealthStatus.Healthy, report.Status);
    }

    [Fact]
    public async Task a_database_nobody_listens_for_is_unhealthy_with_the_reason()
    {
        // A loopback port that was free a moment ago: nothing listens there now.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var report = await CheckAsync($"Host=127.0.0.1;Port={port};Username=kraud;Database=kraud;Timeout=3");

        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.NotNull(report.Entries[HealthSlice.Database].Exception);
    }
}
