using Kraud.Api.Common;

namespace Kraud.Api.Health;

/// <summary>GET /health: the database through the standard Npgsql health check, the async daemon, projection lag.</summary>
public sealed class HealthSlice : KraudSlice
{
    public const string Database = "database";

    public override void AddServices(IServiceCollection services)
    {
        // A real round trip (SELECT 1) on a connection of its own, bounded so that a hung server answers "unhealthy", not never.
        services.AddHealthChecks().AddNpgSql(sp => sp.GetRequiredService<KraudDatabase>().ConnectionString, name: Database,
            timeout: TimeSpan.FromSeconds(5));
        services.AddSingleton(sp => NodeIdentity.From(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<ClusterView>();
        services.AddSingleton<IClusterNodes>(sp => sp.GetRequiredService<ClusterView>());
        services.AddHostedService<NodeRegistration>();
    }

    public override void ConfigureMarten(Marten.StoreOptions marten) => marten.Schema.For<ControlPlaneNode>().Identity(n => n.Id);
}
