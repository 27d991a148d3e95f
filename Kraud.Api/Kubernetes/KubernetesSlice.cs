using Kraud.Api.Common;
using Marten;

namespace Kraud.Api.Kubernetes;

/// <summary>Managed Kubernetes: clusters as resources, their machines as owned pods, their PKI.</summary>
public sealed class KubernetesSlice : KraudSlice
{
    public override void MapFields(Fields fields) => KubernetesFields.Map(fields);

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<ClusterCaKey>();
        marten.AddDecider<Kraud.Domain.Kubernetes.KubernetesCluster>();
    }
}
