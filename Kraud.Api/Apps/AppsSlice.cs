using Kraud.Api.Common;
using Marten;
using Wolverine;

namespace Kraud.Api.Apps;

/// <summary>Managed Apps: the catalog, launches and upgrades as sagas, and their secrets.</summary>
public sealed class AppsSlice : KraudSlice
{
    public const string Queue = "apps";

    public override void MapFields(Fields fields) => AppFields.Map(fields);

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton(sp => AppCatalog.Load(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection("Apps:Rollout").Get<AppRolloutOptions>() ?? new AppRolloutOptions());
        services.AddSingleton<AppParts>();
        services.AddSingleton<IPodEnvironment, AppSecretsEnvironment>();
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<AppSecretValue>().Index(x => x.AppId);
        marten.AddDecider<Kraud.Domain.Apps.AppInstance>();
    }

    public override void ConfigureWolverine(WolverineOptions wolverine)
    {
        // App rollouts (sagas) take their steps one at a time: a saga's state is never written by two steps at once.
        wolverine.PublishMessage<StartAppRollout>().ToLocalQueue(Queue);
        wolverine.PublishMessage<CreateAppRolloutPart>().ToLocalQueue(Queue);
        wolverine.PublishMessage<CheckAppRollout>().ToLocalQueue(Queue);
        wolverine.PublishMessage<ReleaseAppVolumes>().ToLocalQueue(Queue);
        wolverine.LocalQueue(Queue).Sequential();
    }
}
