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
            using var loggers = LoggerFactory.Create(l => l.AddSimpleConsole(o => o.SingleLine = true));
            var dataDirectory = Path.Combine(KraudDatabase.StateDirectory(builder.Configuration), "pg");
            var embedded = await EmbeddedPostgres.StartAsync(dataDirectory, "kraud", loggers.CreateLogger("Kraud.EmbeddedPostgres"));
            builder.Services.AddSingleton(embedded);
            builder.Services.AddHostedService<EmbeddedPostgresStopper>();
            database = new KraudDatabase(embedded.ConnectionString, true, $"embedded PostgreSQL 127.0.0.1:{embedded.Port} (data: {embedded.DataDirectory})");
        }
        builder.Services.AddSingleton(database);
        return database;
    }

    /// <summary>Stops the embedded server after everything else has stopped using it.</summary>
    private sealed class EmbeddedPostgresStopper(EmbeddedPostgres postgres, IHostApplicationLifetime lifetime) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStopped.Register(() => postgres.StopAsync().GetAwaiter().GetResult());
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
