using FastEndpoints;
using FastEndpoints.Swagger;
using Kraud.Api.Access;
using Kraud.Api.Common;
using Kraud.Api.Fleet;
using Kraud.Api.Gql;
using Kraud.Api.WebConsole;
using Kraud.HostRuntime.Configuration;

namespace Kraud.Api.Configuration;

public static class ApiSetup
{
    public static FleetOptions AddKraudFleet(this WebApplicationBuilder builder)
    {
        var fleet = builder.Configuration.GetSection(FleetOptions.Section).Get<FleetOptions>() ?? new FleetOptions();
        if (!fleet.InProcess) fleet.Hosts = [];
        fleet.SevSnp.AuthorityDirectory ??= Path.Combine(DatabaseSetup.StateDirectory(builder.Configuration), SevSnpOptions.DefaultDirectoryName);
        builder.Services.AddSingleton(fleet);
        builder.Services.AddSingleton(new FleetDatacenter(fleet.Datacenter));
        return fleet;
    }

    public static IServiceCollection AddKraudApi(this IServiceCollection services)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<TokenAuthenticator>();
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(Ingresses.NetworkOptions.Section).Get<Ingresses.NetworkOptions>()
                                    ?? new Ingresses.NetworkOptions());
        services.AddSingleton<Ingresses.ITxtResolver, Ingresses.UdpTxtResolver>();
        services.AddSingleton<Ingresses.IDomainVerifier, Ingresses.DnsTxtDomainVerifier>();
        services.AddSingleton<Replay.EventLog>();
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(Replay.ReplayOptions.Section).Get<Replay.ReplayOptions>()
                                    ?? new Replay.ReplayOptions());
        services.AddSingleton<Replay.PlatformCheckpointer>();
        services.AddHostedService(sp => sp.GetRequiredService<Replay.PlatformCheckpointer>());
        services.AddSingleton<Operations.RebuildJobs>();
        services.AddSingleton(sp => Audit.AuditSigningKey.Load(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<Audit.AuditDigests>();
        services.AddHostedService<Audit.AuditDigestSigner>();
        services.AddSingleton<OperatorBootstrap>();
        services.AddHostedService(sp => sp.GetRequiredService<OperatorBootstrap>());
        services.AddHostedService<HostFailureDetector>();
        services.AddHostedService<Pods.FailedReplicaReconciler>();
        services.AddHostedService<Common.PlacementRetry>();
        services.AddKraudGraphQL();
        Confidential.AttestationTrustSetup.AddAttestationTrust(services);
        services.AddSingleton(sp => Apps.AppCatalog.Load(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection("Apps:Rollout").Get<Apps.AppRolloutOptions>() ?? new Apps.AppRolloutOptions());
        services.AddHostedService<Apps.AppRolloutWatcher>();
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(KubernetesApi.KubernetesApiOptions.Section).Get<KubernetesApi.KubernetesApiOptions>()
                                    ?? new KubernetesApi.KubernetesApiOptions());
        services.AddSingleton<KubernetesApi.ServingCertificates>();
        services.AddSingleton(sp => KubernetesApi.SecretSeal.Load(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<KubernetesApi.KubernetesApiListener>();
        services.AddHostedService(sp => sp.GetRequiredService<KubernetesApi.KubernetesApiListener>());
        services.AddHostedService<KubernetesApi.DeploymentRollouts>();
        services.AddFastEndpoints(o => o.Assemblies = [typeof(ApiSetup).Assembly]);
        services.SwaggerDocument(o =>
        {
            o.DocumentSettings = s =>
            {
                s.Title = "Kraud REST API";
                s.Version = "v1";
            };
        });
        return services;
    }

    public static WebApplication UseKraudApi(this WebApplication app)
    {
        app.UseKraudMetricsEndpoint();
        app.UseCorrelation();
        app.UseKraudConsole();
        app.UseFastEndpoints();
        app.UseSwaggerGen();
        app.MapKraudGraphQL();
        return app;
    }
}
