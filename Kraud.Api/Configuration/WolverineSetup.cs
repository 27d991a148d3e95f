using JasperFx;
using JasperFx.CodeGeneration;
using JasperFx.Core;
using Kraud.Api.Common;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Configuration;
using Wolverine;
using Wolverine.Configuration;
using Wolverine.ErrorHandling;
using Wolverine.Postgresql;

namespace Kraud.Api.Configuration;

public static class WolverineSetup
{
    public static void UseKraudWolverine(this WebApplicationBuilder builder, FleetOptions fleet, string connectionString)
    {
        builder.Host.UseWolverine(opts =>
        {
            opts.ServiceName = "kraud-api";
            // Handlers live here even when another assembly (a benchmark, a test harness) hosts the application.
            opts.ApplicationAssembly = typeof(WolverineSetup).Assembly;
            opts.CodeGeneration.TypeLoadMode = TypeLoadMode.Dynamic;
            opts.UseRuntimeCompilation();
            // Several API nodes share one database: the leader (an advisory lock) assigns the run-once work (the schedulers'
            // queues, the rounds of ControlPlaneRoles, the async projections) to one live node each, and a node's durable
            // messages are recovered by the others when it dies. One node alone holds everything.
            opts.Durability.Mode = DurabilityMode.Balanced;
            opts.ConfigureClusterTimings();
            opts.Policies.AutoApplyTransactions();
            // Two handlers of one message would share one transaction only until Wolverine 7 (which runs them apart): one
            // handler a message, checked at start.
            opts.AssertNoCombinedHandlers();
            opts.Policies.UseDurableLocalQueues();
            opts.Policies.UseDurableOutboxOnAllSendingEndpoints();

            // A concurrent writer moved the stream (replicas of one pod report at the same moment): decide again on
            // fresh state, backing off so the writers spread out. A stale expectedVersion still fails, because the
            // handler checks it against the state it loads.
            // Unversioned appends to one stream from two transactions lose the race on the database's (stream, version)
            // key, which Marten reports as EventStreamUnexpectedMaxEventIdException: the same remedy applies.
            opts.OnException<ConcurrencyException>().Or<JasperFx.Events.ExistingStreamIdCollisionException>()
                .Or<JasperFx.Events.EventStreamUnexpectedMaxEventIdException>()
                .Or<Marten.Exceptions.ExistingStreamIdCollisionException>().RetryWithCooldown(
                5.Milliseconds(), 15.Milliseconds(), 40.Milliseconds(), 80.Milliseconds(), 150.Milliseconds(), 300.Milliseconds(),
                600.Milliseconds(), 1.Seconds());

            // Two transactions leased the same free address or prefix, or ingress slot (or acknowledged a peer set first): the key let only one commit; the other
            // decides again and takes the next free one.
            opts.OnException<JasperFx.DocumentAlreadyExistsException>(e =>
                    e.DocType.IsAssignableTo(typeof(IContendedClaim)) || e.DocType == typeof(Kraud.Projections.Network.PeerSetAck)).RetryWithCooldown(
                5.Milliseconds(), 15.Milliseconds(), 40.Milliseconds(), 80.Milliseconds(), 150.Milliseconds(), 300.Milliseconds());

            // The connection failed (a network error, a restart of PostgreSQL): decide again on what is committed. Before
            // the commit nothing was written; after it (the answer was lost) the retry finds its own work done: a create
            // names the pod its first attempt started and answers it (PodDecider), other commands decide on the new state.
            opts.OnException<Npgsql.NpgsqlException>(e => e.IsTransient).RetryWithCooldown(20.Milliseconds(), 200.Milliseconds(), 1.Seconds());

            // Writers that lock several shared streams can still meet in a circle; the one PostgreSQL failed tries again.
            opts.OnException(Streams.IsLockCircle).RetryWithCooldown(5.Milliseconds(), 40.Milliseconds(), 150.Milliseconds(), 600.Milliseconds());

            opts.TuneQueueTransport();
            opts.BuildHandlersBeforeListening();
            // Reports about one pod are handled one after the other (they all append to the pod's stream); reports
            // about different pods run in parallel. Host runtimes put the pod id in the message's group id.
            opts.ListenToPostgresqlQueue(Queues.ControlPlane).PollingInterval(TimeSpan.FromSeconds(fleet.QueuePollingSeconds))
                .PartitionProcessingByGroupId(PartitionSlots.Five);
            // Heartbeats and peer-set acknowledgements (grouped by host) are read apart from the reports, so a burst of those cannot delay them.
            opts.ListenToPostgresqlQueue(Queues.HostState).PollingInterval(TimeSpan.FromSeconds(fleet.QueuePollingSeconds))
                .PartitionProcessingByGroupId(PartitionSlots.Five);

            // Each slice's queues and batching (the schedulers, the mesh, sagas, repairs, the rejection chain).
            foreach (var slice in KraudSlice.All) slice.ConfigureWolverine(opts);

            // The default fleet runs in this process: its host runtimes read their own queues, exactly as a
            // standalone Kraud.HostRuntime process would.
            opts.ServeHosts(fleet);
        });
        builder.Services.AddSingleton<Wolverine.Runtime.Agents.IAgentFamily, ControlPlaneRoles>();
        // After UseWolverine: hosted services start in order, and the agents announce themselves through Wolverine.
        builder.Services.AddHostAgents(fleet, connectionString);
    }

    /// <summary>
    /// How fast the cluster notices a dead node. Wolverine's defaults (a health check every 10 s, stale after a minute)
    /// would leave the scheduler without a holder for a minute; Kraud's promise is a new holder within 10 s. Every node
    /// beats every second; one silent for 5 s is dropped from the assignments on the leader's next check, its roles are
    /// given to the others, and its messages recovered. The leader re-checks that every assigned role really runs every 5 s.
    /// </summary>
    public static void ConfigureClusterTimings(this WolverineOptions opts)
    {
        opts.Durability.FirstHealthCheckExecution = 200.Milliseconds();
        opts.Durability.HealthCheckPollingTime = 1.Seconds();
        opts.Durability.StaleNodeTimeout = 5.Seconds();
        opts.Durability.CheckAssignmentPeriod = 5.Seconds();
        opts.Durability.NodeReassignmentPollingTime = 2.Seconds();
        opts.Durability.FirstNodeReassignmentExecution = 1.Seconds();
        // Deadlines and back-offs are durable scheduled messages (a failed replica's first back-off is 1 s, a rollout checks
        // its parts every second): the default 5 s between looks for due ones would stretch each of them by up to 5 s.
        opts.Durability.ScheduledJobPollingTime = 1.Seconds();
    }
}
