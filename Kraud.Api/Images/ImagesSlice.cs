using Kraud.Api.Common;
using Kraud.Domain.Images;
using Kraud.HostRuntime.Images;
using Marten;

namespace Kraud.Api.Images;

/// <summary>The "Images:EmbeddedRegistry" section: a registry Kraud starts for itself as Docker Hub's mirror (no internet here).</summary>
public sealed class EmbeddedRegistryOptions
{
    public bool Enabled { get; set; }

    /// <summary>Where it keeps its data; default &lt;state&gt;/registry.</summary>
    public string? Directory { get; set; }

    /// <summary>
    /// More Docker Hub names the busybox image is pushed under (e.g. nginx:1.27, postgres:16): a fleet without internet
    /// can then run the README's examples and the tests' fixtures by those names. What runs is busybox, not nginx.
    /// </summary>
    public List<string> Seed { get; set; } = [];
}

/// <summary>Images: registries, registry credentials, createPod's image resolution, and the embedded registry.</summary>
public sealed class ImagesSlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        AddRegistryCredentialField.Map(fields);
        RemoveRegistryCredentialField.Map(fields);
        RegistryCredentialQueries.Map(fields);
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<RegistryCredentialSecret>().Index(x => x.TenantId);
        marten.Schema.For<PodPullSecret>();
    }

    public override Task PrepareAsync(WebApplicationBuilder builder) => AddKraudImagesAsync(builder);

    /// <summary>
    /// Registry settings (Images:Mirrors, Images:InsecureRegistries), the clients that resolve images at createPod, the
    /// control plane's key for registry passwords, and, with Images:EmbeddedRegistry:Enabled, a registry of Kraud's own,
    /// filled with a busybox image built from this machine's busybox-static and made Docker Hub's mirror.
    /// </summary>
    private static async Task AddKraudImagesAsync(WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(RegistryOptions.Section).Get<RegistryOptions>() ?? new RegistryOptions();
        var embedded = builder.Configuration.GetSection("Images:EmbeddedRegistry").Get<EmbeddedRegistryOptions>() ?? new EmbeddedRegistryOptions();
        if (embedded.Enabled)
        {
            using var loggers = LoggerFactory.Create(l => l.AddSimpleConsole(o => o.SingleLine = true));
            var logger = loggers.CreateLogger("Kraud.EmbeddedRegistry");
            try
            {
                var registry = await EmbeddedRegistry.StartAsync(embedded.Directory ?? Path.Combine(KraudDatabase.StateDirectory(builder.Configuration), "registry"),
                    logger: logger);
                options.InsecureRegistries.Add(registry.HostPort);
                options.Mirrors[ImageReference.DockerHub] = [registry.Url.ToString(), .. options.Mirrors.GetValueOrDefault(ImageReference.DockerHub) ?? []];
                await SeedAsync(options, registry, embedded.Seed, logger);
                builder.Services.AddSingleton(registry);
                builder.Services.AddHostedService<EmbeddedRegistryStopper>();
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or RegistryException or HttpRequestException)
            {
                // Kraud still serves; creating a pod then says that Docker Hub cannot be reached.
                logger.LogWarning("No embedded registry: {Reason}", e.Message);
            }
        }
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(sp => new DistributionClient(sp.GetRequiredService<RegistryOptions>()));
        builder.Services.AddSingleton<ImageResolver>();
        builder.Services.AddSingleton(sp => RegistryCredentialKey.Load(sp.GetRequiredService<IConfiguration>()));
        builder.Services.AddSingleton<RegistryCredentials>();
        builder.Services.AddSingleton<IPodImages, PodImages>();
    }

    /// <summary>busybox:latest, busybox:&lt;version&gt; and the seed names, each unless the registry has this very image under it already.</summary>
    private static async Task SeedAsync(RegistryOptions options, EmbeddedRegistry registry, IEnumerable<string> seed, ILogger logger)
    {
        var image = await BusyboxImage.BuildAsync();
        using var client = new DistributionClient(options);
        var names = new[] { "busybox:latest", $"busybox:{image.Version}" }.Concat(seed).Select(n => ImageReference.Parse(n))
            .Where(r => r.Registry == ImageReference.DockerHub).Select(r => (r.Repository, Tag: r.Tag ?? "latest")).Distinct().ToList();
        var missing = new List<string>();
        foreach (var (repository, tag) in names)
            try
            {
                if ((await client.GetManifestAsync(registry.HostPort, repository, tag, null, CancellationToken.None)).Digest != image.ManifestDigest)
                    missing.Add($"{repository}:{tag}");
            }
            catch (RegistryException e) when (e.Failure == RegistryFailure.NotFound)
            {
                missing.Add($"{repository}:{tag}");
            }
        if (missing.Count == 0) return;
        await image.PushAsync(client, registry.HostPort, missing, CancellationToken.None);
        logger.LogInformation("Registry {Url}: busybox {Version} ({Digest}) pushed as {Names}", registry.Url, image.Version, image.ManifestDigest,
            string.Join(", ", missing));
    }

    /// <summary>Stops the registry after everything else has stopped using it.</summary>
    private sealed class EmbeddedRegistryStopper(EmbeddedRegistry registry, IHostApplicationLifetime lifetime) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStopped.Register(() => registry.DisposeAsync().AsTask().GetAwaiter().GetResult());
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
