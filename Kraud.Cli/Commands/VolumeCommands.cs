using System.CommandLine;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Commands;

/// <summary>kraud volumes create|list|get|attach|detach|delete</summary>
public static class VolumeCommands
{
    private static readonly Argument<string> VolumeArg = new("volume") { Description = "The volume's id or name" };
    private static readonly Option<string> PodOption = new("--pod") { Description = "The pod's id", Required = true };

    public static readonly Column<Volume>[] Columns =
    [
        new("NAME", v => v.Name), new("CLASS", v => v.Class), new("SIZE", v => $"{v.SizeGiB}Gi"), new("ZONE", v => v.Zone),
        new("STATE", v => v.State), new("REPLICAS", v => $"{v.Replicas.Count(r => r.State == "HEALTHY")}/{v.DesiredReplicas}"),
        new("ENCRYPTED", v => v.Encrypted ? "yes" : "no"), new("ATTACHED", v => string.Join(",", v.AttachedTo)), new("ID", v => v.Id),
    ];

    public static Command Build()
    {
        var name = new Argument<string>("name") { Description = "The volume's name" };
        var cls = new Option<string>("--class") { Description = "BLOCK, GFS or RED", DefaultValueFactory = _ => "BLOCK" };
        cls.AcceptOnlyFromAmong("BLOCK", "GFS", "RED");
        var size = new Option<int>("--size-gib", "--size") { Description = "Size in GiB", Required = true };
        var zone = new Option<string?>("--zone") { Description = "The zone its replicas live in" };
        var create = new Command("create", "Create a volume (replicated and encrypted on storage hosts)").With(name, cls, size, zone);
        create.Does(async c =>
        {
            var v = await c.RunAsync(VolumesApi.Create, new { input = new { name = c.Get(name), @class = c.Get(cls), sizeGiB = c.Get(size), zone = c.Get(zone) } });
            c.Output.Done(v, $"volume {v.Name} created ({v.Id}), {v.State}");
        });

        var list = new Command("list", "List volumes");
        list.Aliases.Add("ls");
        list.Does(async c => c.Output.List((await VolumesApi.AllAsync(c)).Where(v => v.State != "DELETED").ToList(), Columns));

        var get = new Command("get", "Show one volume").With(VolumeArg);
        get.Does(async c =>
        {
            var v = await VolumesApi.FindAsync(c, c.Get(VolumeArg));
            c.Output.One(v, [.. Columns, new Column<Volume>("HOSTS", x => string.Join("\n", x.Replicas.Select(r => $"{r.HostId} {r.State}")))]);
        });

        var mountPath = new Option<string>("--mount-path") { Description = "Where the pod's microVMs see it", Required = true };
        var attach = new Command("attach", "Mount a volume into a pod (its microVMs restart)").With(VolumeArg, PodOption, mountPath);
        attach.Does(async c =>
        {
            var found = await VolumesApi.FindAsync(c, c.Get(VolumeArg));
            var v = await c.RunAsync(VolumesApi.Attach, new { volumeId = found.Id, podId = c.Get(PodOption), mountPath = c.Get(mountPath) });
            c.Output.Done(v, $"volume {v.Name} attached to pod {c.Get(PodOption)}");
        });

        var detach = new Command("detach", "Unmount a volume from a pod").With(VolumeArg, PodOption);
        detach.Does(async c =>
        {
            var found = await VolumesApi.FindAsync(c, c.Get(VolumeArg));
            var v = await c.RunAsync(VolumesApi.Detach, new { volumeId = found.Id, podId = c.Get(PodOption) });
            c.Output.Done(v, $"volume {v.Name} detached from pod {c.Get(PodOption)}");
        });

        var delete = new Command("delete", "Delete a volume: its keys are destroyed (crypto-erase)").With(VolumeArg);
        delete.Aliases.Add("rm");
        delete.Does(async c =>
        {
            var found = await VolumesApi.FindAsync(c, c.Get(VolumeArg));
            var v = await c.RunAsync(VolumesApi.Delete, new { id = found.Id });
            c.Output.Done(v, $"volume {v.Name} is being erased, {v.State}");
        });

        return new Command("volumes", "Volumes: replicated, encrypted block and file storage").With(create, list, get, attach, detach, delete);
    }
}
