using JasperFx;
using JasperFx.Events.Daemon;
using JasperFx.Events.Projections;
using Kraud.Api.Common;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Access;
using Kraud.Projections.Audit;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Kraud.Projections.Tenants;
using Marten;
using Weasel.Core;
using Wolverine.Marten;

namespace Kraud.Api.Configuration;

public static class MartenSetup
{
    /// <param name="skipHeldGapsAfter">How long a hole in the event sequence may hold the async projections while an older transaction is open (a minute by default).</param>
    public static IServiceCollection AddKraudMarten(this IServiceCollection services, string connectionString, TimeSpan? skipHeldGapsAfter = null)
    {
        // Pooled connections skip the DISCARD ALL on return: Kraud sets no session state, and it was the cheapest
        // large win measured on the create-to-running path.
        // One instance: a bulk rebuild of the chain tells it to forget the head it kept in memory.
        var auditChain = new AuditChainProjection();
        services.AddSingleton(auditChain);
        connectionString = new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { NoResetOnClose = true }.ConnectionString;
        services.AddMarten(opts =>
            {
                opts.Connection(connectionString);
                opts.DatabaseSchemaName = KraudDatabase.Schema;
                opts.UseSystemTextJsonForSerialization(EnumStorage.AsString);
                opts.AutoCreateSchemaObjects = AutoCreate.CreateOrUpdate;
                // Nodes of one cluster start side by side against one database: the schema is applied at start, under
                // Marten's advisory lock, because the lazy creation of a table on first use takes only a lock inside the
                // process, and two nodes creating the same table at once fail one of them (a dead letter in CI).
                opts.ApplyChangesLockTimeout = TimeSpan.FromSeconds(60);
                // Spans for the connections a request's sessions open, and counters of appended events (OpenTelemetry).
                opts.OpenTelemetry.TrackConnections = JasperFx.OpenTelemetry.TrackLevel.Normal;
                opts.OpenTelemetry.TrackEventCounters();

                // The async daemon does not pass a hole in the event sequence while a transaction older than the hole is open
                // (it could still commit into it). A node that takes the projections over while such a hole exists has no
                // record of when the sequence last stood below it, so any open transaction reads as the hole's owner, and the
                // audit chain stalled for minutes after a rolling restart in CI. Kraud's appends commit in seconds: a hole
                // still open after a minute is a rolled-back append, and is skipped (Marten logs and records the skip).
                opts.Projections.SkipStaleGapsDespiteLiveTransactionsAfter = skipHeldGapsAfter ?? TimeSpan.FromSeconds(60);

                // Who and why travel with every event: the audit chain and incident timelines read them back.
                opts.Events.MetadataConfig.CorrelationIdEnabled = true;
                opts.Events.MetadataConfig.CausationIdEnabled = true;
                opts.Events.MetadataConfig.HeadersEnabled = true;

                // Read models the API reads right after a command are inline (same transaction as the events).
                opts.Projections.Add<PodViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<HostViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Volumes.VolumeViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<ZoneViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<TenantViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Kubernetes.KubernetesClusterViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Apps.AppInstanceViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.KubernetesApi.KubeObjectViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Network.VpcViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Network.PeerSetViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Ingresses.IngressViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<ApiTokenViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Compliance.DatacenterAccessViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add<Kraud.Projections.Images.RegistryCredentialViewProjection>(ProjectionLifecycle.Inline);
                opts.Projections.Add(auditChain, ProjectionLifecycle.Async, AuditChainProjection.Name,
                    o =>
                    {
                        o.DeleteViewTypeOnTeardown<AuditEntry>();
                        o.DeleteViewTypeOnTeardown<AuditChainHead>();
                    });

                opts.Schema.For<PodView>().Index(x => x.TenantId).Index(x => x.CreatedTicks)
                    // The scheduler gathers the pods that wait for a placement (SchedulePodHandler.GatherPendingAsync): a few among thousands.
                    .Index(x => x.State);
                opts.Schema.For<ApiTokenView>().UniqueIndex(x => x.SecretSha256);
                // Columns of their own, not indexes on values cast out of the JSON: the chain rebuild makes these indexes
                // again over millions of entries, and the time index alone, a text-to-timestamptz parse of every document,
                // took 8.5 s of CPU per 1.25 million entries against 1.2-1.7 s over a column (AuditChainRebuild fills them).
                opts.Schema.For<AuditEntry>().Duplicate(x => x.TenantId!).Duplicate(x => x.At)
                    // Whose a stream is, once its events left the log for an archive (ArchiveBoundary).
                    .Duplicate(x => x.ResourceId!);
                opts.Schema.For<NameClaim>();
                opts.Schema.For<HostPushed>();
                opts.Schema.For<Kraud.Projections.Volumes.VolumeView>().Index(x => x.TenantId).Index(x => x.CreatedTicks);
                opts.Schema.For<Kraud.Projections.Kubernetes.KubernetesClusterView>().Index(x => x.TenantId);
                opts.Schema.For<Kraud.Projections.Apps.AppInstanceView>().Index(x => x.TenantId);
                opts.Schema.For<Kraud.Projections.Network.PeerSetAck>().UseOptimisticConcurrency(true);
                opts.Schema.For<Kraud.Projections.Network.VpcView>().Index(x => x.TenantId);
                opts.Schema.For<Kraud.Projections.Ingresses.IngressView>().Index(x => x.TenantId);
                opts.Schema.For<Kraud.Projections.Images.RegistryCredentialView>().Index(x => x.TenantId);
                foreach (var slice in KraudSlice.All) slice.ConfigureMarten(opts);
            })
            .UseLightweightSessions()
            .ApplyAllDatabaseChangesOnStartup()
            // No AddAsyncDaemon: Wolverine runs each async projection on one node of the cluster (an agent, as the rounds are)
            // and moves it when that node goes.
            .IntegrateWithWolverine(w =>
            {
                w.UseWolverineManagedEventSubscriptionDistribution = true;
                w.MessageStorageSchemaName = "wolverine";
                w.TransportSchemaName = QueueTransport.Schema;
            });
        return services;
    }
}
