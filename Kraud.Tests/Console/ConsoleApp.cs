using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Kraud.HostRuntime.Agents;
using Kraud.Projections.Fleet;
using Kraud.Tests.Infrastructure;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Console;

/// <summary>
/// The real Kraud application on a real Kestrel listener (a free loopback port), as `dotnet run` serves it, with the
/// in-process simulated fleet, and one headless Chromium for the collection. Browsers need a socket: Alba's in-memory
/// server has none, so this fixture boots Program through WebApplicationFactory's Kestrel mode instead, and the tests'
/// own GraphQL calls go over the same socket.
/// </summary>
public class ConsoleApp : IAsyncLifetime
{
    /// <summary>Settings a collection's application adds to the tests' own (later ones win).</summary>
    protected virtual IEnumerable<(string Key, string Value)> Settings => [];

    private Factory _factory = null!;

    public Uri BaseAddress { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public Chromium Browser { get; private set; } = null!;
    public string ConnectionString { get; private set; } = "";
    public string StateDirectory { get; } = Path.Combine(Path.GetTempPath(), $"kraud-console-{Guid.NewGuid():N}");
    public int HeartbeatTimeoutSeconds => 5;

    public IServiceProvider Services => _factory.Services;

    public HostAgent Agent(string hostId) => Services.GetRequiredService<HostAgents>().All.Single(a => a.Id.ToString() == hostId);

    public async Task InitializeAsync()
    {
        ConnectionString = await TestDatabase.CreateAsync("console");
        _factory = new Factory(KraudApp.TestSettings(ConnectionString, StateDirectory, HeartbeatTimeoutSeconds).Concat(Settings));
        _factory.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        _factory.StartServer();
        var address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        BaseAddress = new Uri(address);
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };

        var hosts = Services.GetRequiredService<HostAgents>().All.Count;
        await Eventually.Until(async () =>
        {
            await using var session = Services.GetRequiredService<IDocumentStore>().QuerySession();
            return await session.Query<HostView>().CountAsync() == hosts;
        }, TimeSpan.FromSeconds(60), "every simulated host registered itself");
        Browser = await Chromium.LaunchAsync();
    }

    public async Task<GqlResponse> GraphQL(string token, string query, object? variables = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/graphql") { Content = JsonContent.Create(new { query, variables }) };
        request.Headers.Authorization = new("Bearer", token);
        request.Headers.Accept.ParseAdd("application/graphql-response+json");
        using var response = await Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        return new GqlResponse(JsonDocument.Parse(body).RootElement.Clone(), (int)response.StatusCode, body);
    }

    public Task<GqlResponse> AsOperator(string query, object? variables = null) => GraphQL(KraudApp.OperatorToken, query, variables);

    /// <summary>Waits until the audit chain (an async projection) holds an entry of this action since the instant, as the token reads it.</summary>
    public Task WaitForAuditAsync(string token, string action, DateTime since) => Eventually.Until(async () =>
        (await GraphQL(token, "query($f: DateTime) { auditLog(from: $f, first: 1000) { nodes { action } } }", new { f = since })).ShouldSucceed()
        .Data.GetProperty("auditLog").GetProperty("nodes").EnumerateArray().Any(n => n.GetProperty("action").GetString() == action),
        TimeSpan.FromSeconds(60), $"the audit chain holds {action}");

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        Http?.Dispose();
        if (_factory is not null) await _factory.DisposeAsync();
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, recursive: true);
    }

    private sealed class Factory(IEnumerable<(string Key, string Value)> settings) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings) builder.UseSetting(key, value);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ConsoleCollection : ICollectionFixture<ConsoleApp>
{
    public const string Name = "Kraud console in Chromium";
}
