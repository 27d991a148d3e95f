using FastEndpoints;
using FastEndpoints.Swagger;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.HostRuntime.Configuration;

namespace Kraud.Api.Configuration;

public static class ApiSetup
{
    public static FleetOptions AddKraudFleet(this WebApplicationBuilder builder)
    {
        var fleet = builder.Configuration.GetSection(FleetOptions.Section).Get<FleetOptions>() ?? new FleetOptions();
        if (!fleet.InProcess) fleet.Hosts = [];
        fleet.SevSnp.AuthorityDirectory ??= Path.Combine(KraudDatabase.StateDirectory(builder.Configuration), SevSnpOptions.DefaultDirectoryName);
        builder.Services.AddSingleton(fleet);
        return fleet;
    }

    /// <summary>Each slice's asynchronous preparation (<see cref="KraudSlice.PrepareAsync"/>), before the services are added.</summary>
    public static async Task PrepareKraudSlicesAsync(this WebApplicationBuilder builder)
    {
        foreach (var slice in KraudSlice.All) await slice.PrepareAsync(builder);
    }

    public static IServiceCollection AddKraudApi(this IServiceCollection services)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<TokenAuthenticator>();
        services.AddKraudGraphQL();
        foreach (var slice in KraudSlice.All) slice.AddServices(services);
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
        foreach (var slice in KraudSlice.All) slice.UsePipeline(app);
        app.UseFastEndpoints();
        app.UseSwaggerGen();
        app.MapKraudGraphQL();
        return app;
    }
}
