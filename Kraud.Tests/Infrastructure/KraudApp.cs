using Alba;
using Kraud.HostRuntime.Agents;
using Kraud.HostRuntime.Drivers;
using Kraud.Projections.Fleet;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// The real Kraud application (Marten, Wolverine, GraphQL, the in-process simulated fleet) on its own database,
/// shared by one test collection. Tests isolate themselves by working in tenants of their own.
/// </summary>
public class KraudApp : IAsyncLifetime
{
    public const string OperatorToken = "krd_test_operator_token_0123456789";

    public IAlbaHost Host { get; protected set; } = null!;
    public string ConnectionString { get; private set; } = "";
    public string StateDirectory { get; } = Path.Combine(Path.GetTempPath(), $"kraud-state-{Guid.NewGuid():N}");

    /// <summary>Boot delay of the simulated hosts: long enough that BOOTING can be seen, short enough for fast tests.</summary>
    public const int BootDelayMs = 30;

    /// <summary>
    /// Failure detection sped up for tests: beats every half second, FAILED after a few silent seconds. The window is
    /// ten beats and more, so that a 2-core machine busy with two test collections does not fail a live host.
    /// </summary>
    public const int HeartbeatIntervalMs = 500;

    public virtual int HeartbeatTimeoutSeconds => 5;

    private readonly System.Collections.Concurrent.ConcurrentQueue<TenantScope> _tenants = new();

    internal void Track(TenantScope tenant) => _tenants.Enqueue(tenant);

    /// <summary>
    /// Removes what every earlier spec of the collection left running, for specs whose placements need the fleet's room
    /// (an app's parts, the zones' N+2 reserve): specs of a collection run one at a time, so none of it is in use.
    /// </summary>
    public async Task ReclaimFleetAsync()
    {
        // The operator sees every tenant's pods: only tenants with a live one (an app's or cluster's parts among them) are visited.
        var live = (await GraphQLClient.AllPodsAsync(this.AsOperator, "tenantId state")).Where(p => p.State() != "STOPPED")
            .Select(p => Guid.Parse(p.GetProperty("tenantId").GetString()!)).ToHashSet();
        foreach (var tenant in _tenants.Where(t => live.Contains(t.Id))) await tenant.RemoveWorkloadsAsync();
    }

    public HostAgent Agent(string hostId) => Agents.All.Single(a => a.Id.ToString() == hostId);

    public SimulatedDriver Driver(string hostId) => (SimulatedDriver)Agent(hostId).Driver;

    public async Task<IReadOnlyList<JasperFx.Events.IEvent>> EventsOf(Guid streamId)
    {
        await using var session = Store.QuerySession();
        return await session.Events.FetchStreamAsync(streamId);
    }

    /// <summary>Reads the host's state, and again after each commit to its stream, until it is <paramref name="state"/>.</summary>
    public Task WaitForHostStateAsync(string hostId, string state, TimeSpan timeout, string what) =>
        StreamCommits.UntilAsync(Guid.Parse(hostId), () => HostStateAsync(hostId), s => s == state, timeout, what);

    public async Task<string> HostStateAsync(string hostId)
    {
        var r = (await this.AsOperator("{ hosts { id state } }")).ShouldSucceed();
        return r.Data.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("id").GetString() == hostId).GetProperty("state").GetString()!;
    }

    /// <summary>Asks as the operator; answers the state the host is in afterwards.</summary>
    public Task<string> CordonAsync(object hostId) => HostMutationAsync("cordonHost", hostId);

    public Task<string> UncordonAsync(object hostId) => HostMutationAsync("uncordonHost", hostId);

    public Task<string> DrainAsync(object hostId) => HostMutationAsync("drainHost", hostId);

    private async Task<string> HostMutationAsync(string mutation, object hostId) =>
        (await this.AsOperator($"mutation($id: ID!) {{ {mutation}(id: $id) {{ state }} }}", new { id = hostId.ToString() })).ShouldSucceed()
        .Data.GetProperty(mutation).GetProperty("state").GetString()!;

    /// <summary>What every test application runs with: its own database and state, the test operator token, fast simulated hosts.</summary>
    public static IEnumerable<(string Key, string Value)> TestSettings(string connectionString, string stateDirectory, int heartbeatTimeoutSeconds) =>
    [
        ("ConnectionStrings:Kraud", connectionString),
        ("KRAUD_BOOTSTRAP_TOKEN", OperatorToken),
        ("Kraud:StateDirectory", stateDirectory),
        ("Fleet:SimulatedBootDelayMs", BootDelayMs.ToString(CultureInfo.InvariantCulture)),
        ("Fleet:HeartbeatIntervalMs", HeartbeatIntervalMs.ToString(CultureInfo.InvariantCulture)),
        ("Fleet:HeartbeatTimeoutSeconds", heartbeatTimeoutSeconds.ToString(CultureInfo.InvariantCulture)),
        ("Logging:LogLevel:Default", "Warning"),
        // A replica's set-up sent again after 5 s without an answer, failed after 20 s: the deadline specs wait for it, and
        // a slow answer on a busy machine only gets a harmless second command.
        ("Fleet:ReplicaAnswerSeconds", "5"),
        ("Fleet:ReplicaAnswerAttempts", "4"),
        // Checkpoints every few events, so that replays in tests start from one and fold the rest.
        ("Replay:CheckpointEveryEvents", "50"),
        // A registry of the application's own stands in for Docker Hub (no internet here): createPod resolves images in it.
        ("Images:EmbeddedRegistry:Enabled", "true"),
        // ... and the registries tests start on this machine are spoken to over plain HTTP.
        ("Images:InsecureRegistries:0", "127.0.0.0/8"),
        // The Docker Engine API on a free port of its own (the real docker CLI talks to it).
        ("Docker:Url", "http://127.0.0.1:0"),
        .. SpecImages.Select((name, i) => ($"Images:EmbeddedRegistry:Seed:{i.ToString(CultureInfo.InvariantCulture)}", name)),
        // Every application serves the clusters' Kubernetes API on a free loopback port of its own.
        ("Kubernetes:ApiUrl", "https://127.0.0.1:0"),
    ];

    /// <summary>Services a collection's application adds or replaces (after the application's own).</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    /// <summary>Configuration a collection's application differs in.</summary>
    protected virtual IEnumerable<(string Key, string Value)> Settings => [];

    public virtual async Task InitializeAsync()
    {
        ConnectionString = await TestDatabase.CreateAsync("kraud");
        Host = await BootNodeAsync([]);
        var expected = Agents.All.Count;
        await Eventually.Until(async () =>
        {
            await using var session = Store.QuerySession();
            return await session.Query<HostView>().CountAsync() == expected;
        }, TimeSpan.FromSeconds(60), "every simulated host registered itself");
    }

    /// <summary>One control-plane node of this application (the first is <see cref="Host"/>; a cluster spec boots more on the same database).</summary>
    protected Task<IAlbaHost> BootNodeAsync(IEnumerable<(string Key, string Value)> node) => AlbaHost.For<Program>(builder =>
    {
        foreach (var (key, value) in TestSettings(ConnectionString, StateDirectory, HeartbeatTimeoutSeconds).Concat(Settings).Concat(node))
            builder.UseSetting(key, value);
        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton<Kraud.Api.Ingresses.ITxtResolver>(TxtRecords);
            services.ConfigureMarten(marten =>
            {
                marten.Listeners.Add(CommitFaults);
                marten.Listeners.Add(StreamCommits);
            });
            ConfigureServices(services);
        });
    });

    /// <summary>
    /// The images specs name, pushed to the application's registry (Docker Hub's mirror) as a busybox image each
    /// (Images:EmbeddedRegistry:Seed): the simulated fleet never runs them, but createPod resolves every image to a digest.
    /// </summary>
    public static readonly string[] SpecImages = ["nginx:1.27", "nginx:latest", "x:1", "api:1", "vault:1.18", "postgres:16"];

    public Kraud.Api.Images.EmbeddedRegistry Registry => Host.Services.GetRequiredService<Kraud.Api.Images.EmbeddedRegistry>();

    /// <summary>Pushes the busybox image to the application's registry under these Docker Hub names (nginx:1.27 is docker.io/library/nginx:1.27).</summary>
    public async Task PushImagesAsync(params string[] names)
    {
        _busybox ??= await Kraud.Api.Images.BusyboxImage.BuildAsync();
        using var client = new Kraud.HostRuntime.Images.DistributionClient(Host.Services.GetRequiredService<Kraud.HostRuntime.Images.RegistryOptions>());
        await _busybox.PushAsync(client, Registry.HostPort, names.Select(n => Kraud.Domain.Images.ImageReference.Parse(n))
            .Select(r => $"{r.Repository}:{r.Tag}"), CancellationToken.None);
    }

    private Kraud.Api.Images.BusyboxImage? _busybox;

    /// <summary>Where the Docker Engine API of this application listens.</summary>
    public Uri DockerUrl => Host.Services.GetRequiredService<Kraud.Api.Docker.DockerApiServer>().Url
                            ?? throw new InvalidOperationException("The Docker API is not served: Docker:Url is not set.");

    /// <summary>What a host runtime process needs to pull from the same registry as this application.</summary>
    public IReadOnlyDictionary<string, string> RegistryEnvironment => new Dictionary<string, string>
    {
        ["Images__Mirrors__docker.io__0"] = Registry.Url.ToString(),
        ["Images__InsecureRegistries__0"] = Registry.HostPort,
        ["Images__InsecureRegistries__1"] = "127.0.0.0/8",
    };

    /// <summary>Commits made to fail after they committed (armed by a test for a pod name).</summary>
    public CommitFaults CommitFaults { get; } = new();

    /// <summary>Wakes specs that wait for a read model of a stream (see <see cref="Pods.WaitForPodAsync"/>).</summary>
    public StreamCommits StreamCommits { get; } = new();

    /// <summary>TXT records domain verification finds (tests publish the tokens they were given).</summary>
    public TestTxtRecords TxtRecords { get; } = new();

    public IDocumentStore Store => Host.Services.GetRequiredService<IDocumentStore>();

    public HostAgents Agents => Host.Services.GetRequiredService<HostAgents>();

    public IEnumerable<SimulatedDriver> Drivers => Agents.All.Select(a => a.Driver).OfType<SimulatedDriver>();

    public virtual async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        StateDirectories.Remove(StateDirectory);
    }
}

[CollectionDefinition(Name)]
public sealed class ApiCollection : ICollectionFixture<KraudApp>
{
    public const string Name = "Kraud API";
}

/// <summary>A control plane with no in-process fleet: every host is a Kraud.HostRuntime process the test starts.</summary>
public sealed class ProcessFleetApp : KraudApp
{
    /// <summary>Host processes start cold (JIT, first messages) on a busy machine: a longer window before one counts as dead.</summary>
    public override int HeartbeatTimeoutSeconds => 8;

    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Fleet:InProcess", "false"),
        // A host process answers its first command only after starting cold (JIT, Wolverine compiling its handler), which
        // takes tens of seconds on a busy machine: a replica fails for want of an answer only after 80 s.
        ("Fleet:ReplicaAnswerSeconds", "20"),
        ("Fleet:ReplicaAnswerAttempts", "4"),
        // Two processes make a zone: too small for N+2, so this lab runs without the reserve.
        ("Fleet:EnforceNPlus2", "false"),
    ];
}

[CollectionDefinition(Name)]
public sealed class ProcessFleetCollection : ICollectionFixture<ProcessFleetApp>
{
    public const string Name = "Kraud with host runtime processes";
}

/// <summary>Volume specs power storage hosts off: an application of their own keeps that away from the pod specs.</summary>
[CollectionDefinition(Name)]
public sealed class VolumeCollection : ICollectionFixture<KraudApp>
{
    public const string Name = "Kraud volumes";
}
