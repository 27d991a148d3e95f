using JasperFx;
using Kraud.Api.Audit;
using Kraud.Api.Configuration;

// Offline tools need no database and no server.
if (args is ["audit", "verify", .. var verifyArgs]) return await AuditExportVerifier.RunAsync(verifyArgs, Console.Out);

var builder = WebApplication.CreateBuilder(args);
var database = await builder.AddKraudDatabaseAsync();
var fleet = builder.AddKraudFleet();
await builder.PrepareKraudSlicesAsync();
builder.Services.AddKraudMarten(database.ConnectionString, TimeSpan.FromSeconds(builder.Configuration.GetValue("Events:SkipHeldSequenceGapsAfterSeconds", 60.0)));
builder.UseKraudWolverine(fleet, database.ConnectionString);
builder.Services.AddKraudApi();
builder.AddKraudTelemetry();

var app = builder.Build();
app.UseKraudApi();
app.Logger.LogInformation("Kraud uses {Database}; simulated fleet of {Hosts} hosts in {Datacenter}", database.Description, fleet.Hosts.Count, fleet.Datacenter);
// JasperFx commands (e.g. `projections rebuild`, `codegen write`) when asked for one; else just serve.
if (args.Length > 0 && !args[0].StartsWith('-')) return await app.RunJasperFxCommands(args);
try
{
    await app.RunAsync();
}
catch (OperationCanceledException) when (app.Lifetime.ApplicationStopping.IsCancellationRequested)
{
    // Stopped (SIGTERM) while still starting: nothing was served yet, so nothing is lost; an orchestrator sees a clean exit.
}
return 0;

/// <summary>Visible to Alba and the benchmark, which boot the real application.</summary>
public partial class Program;
