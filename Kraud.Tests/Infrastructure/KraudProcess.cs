namespace Kraud.Tests.Infrastructure;

/// <summary>
/// The real Kraud.Api as its own process on a real loopback socket (a CLI process cannot reach Alba's in-memory
/// TestServer), against a fresh database of the test run's cluster, with its default in-process simulated fleet.
/// Shared by one collection; everything it made is removed when the collection ends.
/// </summary>
public sealed class KraudProcess : IAsyncLifetime
{
    public const string OperatorToken = "krd_test_cli_operator_token_0123456789";

    private ApiNodeProcess? _node;

    public string Url { get; private set; } = "";
    public string ConnectionString { get; private set; } = "";
    public string WorkDirectory => _node?.WorkDirectory ?? throw new InvalidOperationException("Kraud.Api is not started.");

    /// <summary>What the process printed, for failure messages.</summary>
    public string Log => _node?.OutputTail() ?? "";

    public async Task InitializeAsync()
    {
        ConnectionString = await TestDatabase.CreateAsync("kraudcli");
        var environment = new Dictionary<string, string>
        {
            ["Fleet__SimulatedBootDelayMs"] = KraudApp.BootDelayMs.ToString(CultureInfo.InvariantCulture),
            ["Fleet__HeartbeatIntervalMs"] = KraudApp.HeartbeatIntervalMs.ToString(CultureInfo.InvariantCulture),
            // Docker Hub's mirror, a registry of the process's own with the images the CLI's specs name (no internet here).
            ["Images__EmbeddedRegistry__Enabled"] = "true",
        };
        for (var i = 0; i < KraudApp.SpecImages.Length; i++)
            environment[$"Images__EmbeddedRegistry__Seed__{i.ToString(CultureInfo.InvariantCulture)}"] = KraudApp.SpecImages[i];
        _node = ApiNodeProcess.Start(ConnectionString, $"cli-{Guid.NewGuid():N}"[..10], OperatorToken, environment);
        Url = (await _node.WaitUntilServingAsync(TimeSpan.FromSeconds(90))).ToString().TrimEnd('/');
        using var http = new HttpClient { BaseAddress = new Uri(Url) };
        await Eventually.Until(async () => (await http.GetAsync("/health")).IsSuccessStatusCode, TimeSpan.FromSeconds(60), "Kraud.Api is healthy");
    }

    public async Task DisposeAsync()
    {
        if (_node is not null) await _node.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class CliCollection : ICollectionFixture<KraudProcess>
{
    public const string Name = "kraud CLI against a Kraud process";
}
