using Kraud.Api.Common;
using Marten;
using Wolverine;

namespace Kraud.Api.Ingresses;

/// <summary>Managed, authenticated and direct ingresses, their domains and their repair.</summary>
public sealed class IngressesSlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        IngressFields.Map(fields);
        SetIngressUserField.Map(fields);
        IngressAccessLogFields.Map(fields);
    }

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(NetworkOptions.Section).Get<NetworkOptions>() ?? new NetworkOptions());
        services.AddSingleton<ITxtResolver, DnsTxtResolver>();
        services.AddSingleton<IDomainVerifier, DnsTxtDomainVerifier>();
        services.AddSingleton(sp => IngressCertificateAuthority.LoadOrCreate(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<IngressesContract>();
        services.AddSingleton<IIngresses>(sp => sp.GetRequiredService<IngressesContract>());
        services.AddSingleton<IBootFirewall>(sp => sp.GetRequiredService<IngressesContract>());
        services.AddSingleton<IIngressConfigPush>(sp => sp.GetRequiredService<IngressesContract>());
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<IngressSlotClaim>().Index(x => x.HostId);
        marten.Schema.For<IngressUserCredential>().Index(x => x.IngressId);
        marten.Schema.For<IngressAccessLogEntry>().Index(x => x.IngressId).Index(x => x.At);
        marten.AddDecider<Kraud.Domain.Ingresses.Ingress>();
    }

    public override void ConfigureWolverine(WolverineOptions wolverine)
    {
        wolverine.PublishMessage<RepairIngresses>().ToLocalQueue(RepairIngressesHandler.Queue);
        wolverine.LocalQueue(RepairIngressesHandler.Queue).Sequential();
    }
}
