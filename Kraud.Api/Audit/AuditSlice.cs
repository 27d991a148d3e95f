using Kraud.Api.Common;
using Kraud.Projections.Audit;
using Marten;
using Wolverine;

namespace Kraud.Api.Audit;

/// <summary>The audit log and its hash chain, signed digests, exports, event archives (the events with the entries and digest that prove them), and the chain of refused commands.</summary>
public sealed class AuditSlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        AuditQueries.Map(fields);
        AuditDigestFields.Map(fields);
        RejectedCommandFields.Map(fields);
        ArchiveEventsField.Map(fields);
    }

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton(sp => AuditSigningKey.Load(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<AuditDigests>();
        services.AddSingleton<ArchivedEventRemoval>();
        services.AddSingleton<LiveStreamCompaction>();
        services.AddSingleton<EventArchiver>();
        services.AddRunOnceRound<AuditDigestSigner>("audit-digests");
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<AuditDigest>();
        marten.Schema.For<RejectedCommandEntry>().Index(x => x.TenantId);
        marten.Schema.For<RejectionChainHead>();
        marten.Schema.For<EventArchiveRecord>();
    }

    public override void ConfigureWolverine(WolverineOptions wolverine)
    {
        wolverine.PublishMessage<CommandRejected>().ToLocalQueue(CommandRejectedHandler.Queue);
        wolverine.LocalQueue(CommandRejectedHandler.Queue).Sequential();
    }
}
