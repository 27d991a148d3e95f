using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Kubernetes;
using Kraud.Domain.Pods;

namespace Kraud.Tests.Domain;

public class KubernetesDeciderSpecs
{
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 20, 0, 0, TimeSpan.Zero);
    private static readonly Guid ClusterId = Guid.NewGuid(), Tenant = Guid.NewGuid();
    private static readonly Principal Admin = new("t1", Role.Admin, Tenant, "admin");

    private static KubernetesCluster Created(params NodePoolRequest[] pools) =>
        Fold.Events<KubernetesCluster>(KubernetesDecider.Decide(
            new CreateKubernetesCluster(ClusterId, Tenant, "prod", "1.34", "fsn1-a", pools.Length == 0 ? [new("workers", 2, 2, 2048)] : pools, "CA", Admin, Now),
            KubernetesCluster.Initial));

    [Fact]
    public void a_cluster_is_a_control_plane_pod_of_three_microvms_and_one_pod_per_node_pool_all_in_its_zone_and_owned_by_it()
    {
        var cluster = Created(new NodePoolRequest("workers", 2, 2, 2048), new NodePoolRequest("big", 1, 8, 16384));
        var pods = KubernetesPlan.Pods(cluster, Admin, Now).ToList();
        Assert.Equal(3, pods.Count);
        Assert.Equal((KubernetesPlan.ControlPlanePodId(ClusterId), 3), (pods[0].PodId, pods[0].Replicas));
        Assert.Equal([3, 2, 1], pods.Select(p => p.Replicas));
        Assert.All(pods, p => Assert.Equal(("fsn1-a", "k8s-prod", ClusterId), (p.Spec.Zone, p.Spec.Namespace, p.Owner!.Id)));
        Assert.Equal(8, pods[2].Spec.Cpu);
    }

    [Fact]
    public void scaling_a_pool_to_its_size_changes_nothing_and_an_unknown_pool_is_not_found()
    {
        var cluster = Created();
        Assert.Empty(KubernetesDecider.Decide(new ScaleNodePool(ClusterId, "workers", 2, Admin, Now), cluster));
        var scaled = Assert.IsType<NodePoolScaled>(Assert.Single(KubernetesDecider.Decide(new ScaleNodePool(ClusterId, "workers", 5, Admin, Now), cluster)));
        Assert.Equal((2, 5), (scaled.From, scaled.To));
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<DomainException>(() => KubernetesDecider.Decide(new ScaleNodePool(ClusterId, "gpu", 1, Admin, Now), cluster)).Code);
    }

    [Fact]
    public void a_deleted_cluster_takes_no_more_commands()
    {
        var cluster = Created().Evolve(new KubernetesClusterDeletionRequested(ClusterId, "admin", Now));
        Assert.Equal(ErrorCode.Precondition,
            Assert.Throws<DomainException>(() => KubernetesDecider.Decide(new IssueKubeconfig(ClusterId, "a", "01", Now, Admin, Now), cluster)).Code);
    }

    [Fact]
    public void a_product_is_degraded_with_the_reason_of_its_first_broken_part_and_running_only_when_every_part_runs()
    {
        var failed = Pod.Initial with { Exists = true, Replicas = 1, UnschedulableReason = "no room" };
        Assert.Equal(("DEGRADED", "node pool a: no room"), PartsHealth.Of([new("control plane", null), new("node pool a", failed)], deleting: false));
        Assert.Equal(("PROVISIONING", null), PartsHealth.Of([new("control plane", null)], deleting: false));
        Assert.Equal(("DELETED", null), PartsHealth.Of([new("control plane", null)], deleting: true));
    }
}
