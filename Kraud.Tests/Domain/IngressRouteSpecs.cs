using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;

namespace Kraud.Tests.Domain;

/// <summary>SetIngressRoutes: an app upgrade points its ingress at the new version's pods, keeping the ingress and its domains.</summary>
public class IngressRouteSpecs
{
    private static readonly Guid Old = Guid.NewGuid(), New = Guid.NewGuid();
    private static readonly Principal By = Principal.System("test");

    private static IngressFacts Facts(params Guid[] pods) =>
        new(pods.ToDictionary(p => p, p => new RoutedPod(p, "web", [])), [new(Guid.NewGuid(), "i1", "a", 8), new(Guid.NewGuid(), "i2", "a", 8),
            new(Guid.NewGuid(), "i3", "b", 8)], null);

    private static Ingress Managed() => Fold.Events<Ingress>(IngressDecider.Decide(new CreateIngress(Guid.NewGuid(), Guid.NewGuid(), "web", IngressKind.Managed,
        [new IngressRoute("web.example.com", "/", Old, 80)], null, null, null, [], false, 1, By, DateTimeOffset.UnixEpoch), Ingress.Initial, Facts(Old)));

    [Fact]
    public void routes_move_to_other_pods_of_the_tenant_and_the_ingress_keeps_its_replicas_and_domains()
    {
        var ingress = Managed().Evolve(new IngressDomainAdded(Guid.Empty, "example.com", "t", DateTimeOffset.UnixEpoch))
            .Evolve(new IngressDomainVerified(Guid.Empty, "example.com", "txt", DateTimeOffset.UnixEpoch));
        var moved = new[] { new IngressRoute("web.example.com", "/", New, 80) };
        var changed = Assert.IsType<IngressRoutesChanged>(Assert.Single(IngressDecider.Decide(new SetIngressRoutes(ingress.Id, moved, By, DateTimeOffset.UnixEpoch),
            ingress, Facts(New))));
        var after = ingress.Evolve(changed);
        Assert.Equal(New, Assert.Single(after.Routes).PodId);
        Assert.Equal(ingress.Replicas, after.Replicas);
        Assert.True(after.Serves("web.example.com"));
        Assert.Empty(IngressDecider.Decide(new SetIngressRoutes(ingress.Id, moved, By, DateTimeOffset.UnixEpoch), after, Facts(New)));
    }

    [Fact]
    public void routes_to_a_pod_the_tenant_does_not_have_or_none_at_all_or_on_a_deleted_ingress_are_refused()
    {
        var ingress = Managed();
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<DomainException>(() => IngressDecider.Decide(
            new SetIngressRoutes(ingress.Id, [new IngressRoute("web.example.com", "/", New, 80)], By, DateTimeOffset.UnixEpoch), ingress, Facts(Old))).Code);
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => IngressDecider.Decide(
            new SetIngressRoutes(ingress.Id, [], By, DateTimeOffset.UnixEpoch), ingress, Facts(Old))).Code);
        var deleted = ingress.Evolve(new IngressDeleted(ingress.Id, "t", DateTimeOffset.UnixEpoch));
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<DomainException>(() => IngressDecider.Decide(
            new SetIngressRoutes(ingress.Id, [new IngressRoute("web.example.com", "/", Old, 80)], By, DateTimeOffset.UnixEpoch), deleted, Facts(Old))).Code);
    }
}
