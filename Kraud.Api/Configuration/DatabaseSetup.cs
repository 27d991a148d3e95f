using Kraud.Api.Common;
using Kraud.Api.Database;

namespace Kraud.Api.Configuration;

public static class DatabaseSetup
{
    /// <summary>
    /// ConnectionStrings:Kraud or KRAUD_DATABASE selects an external PostgreSQL; without either, Kraud starts a private
    /// cluster from the installed PostgreSQL binaries under the state directory and stops it when it stops.
    /// </summary>
    public static async Task<KraudDatabase> AddKraudDatabaseAsync(this WebApplicationBuilder builder)
    {
        var configured = builder.Configuration.GetConnectionString("Kraud") ?? builder.Configuration["KRAUD_DATABASE"];
        KraudDatabase database;
        if (!string.IsNullOrWhiteSpace(configured))
        {
            var csb = new Npgsql.NpgsqlConnectionStringBuilder(configured);
            database = new KraudDatabase(configured, false, $"external PostgreSQL {csb.Host}:{csb.Port}/{csb.Database}");
        }
        else
        {
            // Only planned here (the port, so the connection string): the server starts with the host, before any
            // other hosted service, and stops after all of them.
            var dataDirectory = Path.Combine(KraudDatabase.StateDirectory(builder.Configuration), "pg");
            var embedded = EmbeddedPostgres.Plan(dataDirectory, "kraud");
            builder.Services.AddSingleton(embedded);
            builder.Services.AddHostedService<EmbeddedPostgresService>();
            database = new KraudDatabase(embedded.ConnectionString, true, $"embedded PostgreSQL 127.0.0.1:{embedded.Port} (data: {embedded.DataDirectory})");
        }
        builder.Services.AddSingleton(database);
        return database;
    }

    /// <summary>
    /// Runs the embedded server for the host's lifetime: started in <c>StartingAsync</c>, which the host calls on every
    /// lifecycle service before any hosted service starts (Marten's schema, Wolverine), and stopped in <c>StoppedAsync</c>,
    /// after every hosted service has stopped using it.
    /// </summary>
    private sealed class EmbeddedPostgresService(EmbeddedPostgres postgres, ILogger<EmbeddedPostgres> logger) : IHostedLifecycleService
    {
        public async Task StartingAsync(CancellationToken cancellationToken)
        {
            postgres.UseLogger(logger);
            await postgres.StartPlannedAsync(cancellationToken);
        }

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppedAsync(CancellationToken cancellationToken) => postgres.StopAsync();
    }
}
