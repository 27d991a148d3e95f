using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;

namespace Kraud.Tests.Domain;

public class FileServerSpecs
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 22, 0, 0, TimeSpan.Zero);
    private static readonly Guid Tenant = Guid.Parse("22222222-2222-2222-2222-222222222222");
    private static readonly Principal Admin = new("t1", Role.Admin, Tenant, "admin");
    private static readonly Principal System = Principal.System("file-server");

    private static Volume Gfs(Guid id, bool onExports)
    {
        var v = VolumeDecider.Decide(new CreateVolume(id, Tenant, "shared", VolumeClass.Gfs, 1, "z1", Admin, Now), Volume.Initial)
            .Aggregate(Volume.Initial, (s, e) => s.Evolve(e));
        return onExports
            ? v with { Replicas = [new VolumeReplica(Guid.NewGuid(), "s1", ReplicaPhase.Healthy, false, true, Now) { Export = new ExportAddress("100.64.0.7", 10809) }] }
            : v;
    }

    [Fact]
    public void a_gfs_volume_on_block_exports_has_a_file_server_and_one_on_simulated_storage_or_of_another_class_has_none()
    {
        var id = Guid.NewGuid();
        Assert.True(FileServer.Serves(Gfs(id, onExports: true)));
        Assert.False(FileServer.Serves(Gfs(id, onExports: false)));
        Assert.False(FileServer.Serves(Gfs(id, onExports: true) with { Class = VolumeClass.Block }));
        Assert.False(FileServer.Serves(Gfs(id, onExports: true) with { Deleting = true }));
    }

    [Fact]
    public void the_file_server_pod_is_one_replica_owned_by_the_volume_alone_in_its_namespace_mounting_the_volume_with_an_id_derived_from_it()
    {
        var id = Guid.NewGuid();
        var create = FileServer.Create(Gfs(id, onExports: true), System, Now);
        Assert.Equal(FileServer.PodId(id), create.PodId);
        Assert.Equal(FileServer.PodId(id), FileServer.PodId(id));
        Assert.NotEqual(FileServer.PodId(Guid.NewGuid()), create.PodId);
        Assert.Equal(1, create.Replicas);
        Assert.Equal(new ResourceOwner(ResourceOwner.Volume, id, "shared"), create.Owner);
        Assert.Equal([FileServer.Program, FileServer.MountPath], create.Spec.Command);
        Assert.Equal("z1", create.Spec.Zone);
        var mount = Assert.Single(create.Spec.Mounts);
        Assert.Equal((id, FileServer.MountPath, false), (mount.VolumeId, mount.MountPath, mount.ReadOnly));
        // A valid pod command: names are DNS labels, and the namespace is the volume's own.
        var events = PodDecider.Decide(create, Pod.Initial);
        Assert.IsType<PodRequested>(events[0]);
        Assert.Equal(FileServer.Namespace(id), create.Spec.Namespace);
        Assert.NotEqual(FileServer.Namespace(Guid.NewGuid()), FileServer.Namespace(id));
    }

    [Fact]
    public void a_gfs_volume_is_deleted_with_only_its_file_server_attached_but_not_while_another_pod_mounts_it()
    {
        var id = Guid.NewGuid();
        var v = Gfs(id, onExports: true);
        v = v.Evolve(new VolumeAttached(id, FileServer.PodId(id), FileServer.MountPath, false, "system:file-server", Now));
        var client = Guid.NewGuid();
        var shared = v.Evolve(new VolumeAttached(id, client, "/data", false, "admin", Now));
        var refused = Assert.Throws<DomainException>(() => VolumeDecider.Decide(new DeleteVolume(id, Admin, Now), shared));
        Assert.Equal(ErrorCode.Precondition, refused.Code);
        Assert.Contains(client.ToString(), refused.Message);
        Assert.DoesNotContain(FileServer.PodId(id).ToString(), refused.Message);
        Assert.IsType<VolumeDeletionRequested>(VolumeDecider.Decide(new DeleteVolume(id, Admin, Now), v)[0]);
    }
}
