using Kraud.Api.Images;
using Kraud.Domain.Images;
using Kraud.HostRuntime.Images;

namespace Kraud.Api.Configuration;

/// <summary>The "Images:EmbeddedRegistry" section: a registry Kraud starts for itself as Docker Hub's mirror (no internet here).</summary>
public sealed class EmbeddedRegistryOptions
{
    public bool Enabled { get; set; }

    /// <summary>Where it keeps its data; default &lt;state&gt;/registry.</summary>
    public string? Directory { get; set; }
}

public static class ImagesSetup
{
    /// <summary>
    /// Registry settings (Images:Mirrors, Images:InsecureRegistries), the clients that resolve images at createPod, the
    /// control plane's key for registry passwords, and, with Images:EmbeddedRegistry:Enabled, a registry of Kraud's own,
    /// filled with a busybox image built from this machine's busybox-static and made Docker Hub's mirror.
    /// </summary>
    public static async Task AddKraudImagesAsync(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(RegistryOptions.Section).Get<RegistryOptions>() ?? new RegistryOptions();
        var embedded = builder.Configuration.GetSection("Images:EmbeddedRegistry").Get<EmbeddedRegistryOptions>() ?? new EmbeddedRegistryOptions();
        if (embedded.Enabled)
        {
            using var loggers = LoggerFactory.Create(l => l.AddSimpleConsole(o => o.SingleLine = true));
            var logger = loggers.CreateLogger("Kraud.EmbeddedRegistry");
            try
            {
                var registry = await EmbeddedRegistry.StartAsync(embedded.Directory ?? Path.Combine(DatabaseSetup.StateDirectory(builder.Configuration), "registry"),
                    logger: logger);
                options.InsecureRegistries.Add(registry.HostPort);
                options.Mirrors[ImageReference.DockerHub] = [registry.Url.ToString(), .. options.Mirrors.GetValueOrDefault(ImageReference.DockerHub) ?? []];
                await SeedAsync(options, registry, logger);
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
        builder.Services.AddSingleton<Pods.PodImageResolution>();
    }

    /// <summary>busybox:latest and busybox:&lt;version&gt;, unless the registry has this very image already.</summary>
    private static async Task SeedAsync(RegistryOptions options, EmbeddedRegistry registry, ILogger logger)
    {
        var image = await BusyboxImage.BuildAsync();
        using var client = new DistributionClient(options);
        try
        {
            var current = await client.GetManifestAsync(registry.HostPort, "library/busybox", "latest", null, CancellationToken.None);
            if (current.Digest == image.ManifestDigest) return;
        }
        catch (RegistryException e) when (e.Failure == RegistryFailure.NotFound) { }
        await image.PushAsync(client, registry.HostPort, ["library/busybox:latest", $"library/busybox:{image.Version}"], CancellationToken.None);
        logger.LogInformation("Registry {Url}: busybox {Version} ({Digest}) pushed as docker.io/library/busybox", registry.Url, image.Version, image.ManifestDigest);
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
