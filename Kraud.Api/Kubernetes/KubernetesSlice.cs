using Kraud.Api.Common;
using Kraud.Api.Kubernetes.ClusterApi;
using Marten;

namespace Kraud.Api.Kubernetes;

/// <summary>Managed Kubernetes: clusters as resources, their machines as owned pods, their PKI, and each cluster's Kubernetes API.</summary>
public sealed class KubernetesSlice : KraudSlice
{
    public override void MapFields(Fields fields) => KubernetesFields.Map(fields);

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(KubernetesApiOptions.Section).Get<KubernetesApiOptions>()
                                    ?? new KubernetesApiOptions());
        services.AddSingleton<ServingCertificates>();
        services.AddSingleton<KubeLog>();
        services.AddSingleton(sp => SecretSeal.Load(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<KubernetesApiListener>();
        services.AddHostedService(sp => sp.GetRequiredService<KubernetesApiListener>());
        services.AddRunOnceRound<DeploymentRollouts>("kubernetes-rollouts");
        services.AddRunOnceRound<ServiceLoadBalancers>("kubernetes-load-balancers");
        services.AddRunOnceRound<ClaimVolumeReclaimer>("kubernetes-volume-reclaim");
        services.AddSingleton<IPodEnvironment, KubeSecretsEnvironment>();
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<ClusterCaKey>();
        marten.Schema.For<Kraud.Projections.KubernetesApi.KubeObjectView>().Index(x => x.ClusterId);
        marten.Schema.For<KubeSecretData>();
        marten.Schema.For<KubeClaimVolume>();
        marten.AddDecider<Kraud.Domain.Kubernetes.KubernetesCluster>();
        marten.AddDecider<Kraud.Domain.KubernetesApi.KubeObject>();
    }
}
