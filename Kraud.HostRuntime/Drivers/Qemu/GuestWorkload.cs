using System.Globalization;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Images;

namespace Kraud.HostRuntime.Drivers.Qemu;

/// <summary>
/// What the guest's /init runs, as a small shell script the host sends on the virtio-console port kraud.config (base64 on
/// one line; it never touches the kernel command line, which holds 2 KB, nor a disk). With an image: its Entrypoint, then
/// the pod's command or else the image's Cmd (as Docker does), the image's Env with the pod's env over it, its WorkingDir
/// and its user (resolved on the host from the image's own passwd and group files). Without one (pods whose image nobody
/// resolved): the pod's command, run in Kraud's own initramfs.
/// </summary>
public static class GuestWorkload
{
    /// <summary>Docker's PATH for images that set none.</summary>
    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    public static string VolumeSerial(int index) => $"kraud-vol{index}";

    public const string RootfsSerial = "kraud-rootfs", EphemeralSerial = "kraud-ephemeral";

    /// <summary>The workload's argv: the image's Entrypoint, then the pod's command or else the image's Cmd.</summary>
    public static IReadOnlyList<string> Argv(MicroVmSpec spec, ImageRunConfig? image) =>
        image is null ? spec.Command : [.. image.Entrypoint, .. spec.Command.Count > 0 ? spec.Command : image.Cmd];

    /// <summary>The image's environment with the pod's over it; PATH and HOME as Docker fills them in when missing.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Environment(MicroVmSpec spec, PreparedRootfs? rootfs)
    {
        var env = new List<KeyValuePair<string, string>>();
        void Set(string key, string value)
        {
            var at = env.FindIndex(e => e.Key == key);
            if (at >= 0) env[at] = new(key, value);
            else env.Add(new(key, value));
        }
        foreach (var entry in rootfs?.Config.Env ?? [])
        {
            var eq = entry.IndexOf('=');
            if (eq > 0) Set(entry[..eq], entry[(eq + 1)..]);
        }
        foreach (var (key, value) in spec.Env.OrderBy(e => e.Key, StringComparer.Ordinal)) Set(key, value);
        if (env.All(e => e.Key != "PATH")) Set("PATH", rootfs is null ? "/bin" : DefaultPath);
        if (rootfs is not null && env.All(e => e.Key != "HOME")) Set("HOME", rootfs.User.Home);
        return env;
    }

    public static string Script(MicroVmSpec spec, PreparedRootfs? rootfs)
    {
        var argv = Argv(spec, rootfs?.Config);
        if (rootfs is not null && argv.Count == 0)
            throw new MicroVmBootException("the image has no Entrypoint or Cmd and the pod gives no command");
        var script = new StringBuilder();
        script.Append("kraud_image=").Append(rootfs is null ? '0' : '1').Append('\n');
        if (rootfs is not null)
        {
            var workdir = string.IsNullOrEmpty(rootfs.Config.WorkingDir) ? "/" : rootfs.Config.WorkingDir;
            if (!workdir.StartsWith('/')) workdir = "/" + workdir;
            script.Append("kraud_uid=").Append(rootfs.User.Uid.ToString(CultureInfo.InvariantCulture)).Append('\n');
            script.Append("kraud_gid=").Append(rootfs.User.Gid.ToString(CultureInfo.InvariantCulture)).Append('\n');
            script.Append("kraud_workdir=").Append(Quote(workdir)).Append('\n');
        }
        script.Append("kraud_volumes() {\n  :\n");
        foreach (var (volume, index) in spec.Attachments.Select((v, i) => (v, i)))
        {
            if (!volume.MountPath.StartsWith('/') || volume.MountPath.Split('/').Contains(".."))
                throw new MicroVmBootException($"volume {volume.VolumeId}: mount path '{volume.MountPath}' is not an absolute path without '..'");
            if (volume.FileServer is { } server)
            {
                if (!System.Net.IPAddress.TryParse(server, out _))
                    throw new MicroVmBootException($"volume {volume.VolumeId}: the file server address '{server}' is not an IP address");
                script.Append("  kraud_mount_nfs ").Append(Quote(server)).Append(volume.ReadOnly ? " ro " : " rw ").Append(Quote(volume.MountPath)).Append('\n');
                continue;
            }
            script.Append("  kraud_mount_volume ").Append(Quote(VolumeSerial(index))).Append(volume.ReadOnly ? " ro " : " rw ")
                .Append(Quote(volume.MountPath)).Append('\n');
        }
        script.Append("}\n");
        if (argv.Count > 0)
        {
            // env -i: the workload sees exactly its environment, nothing of /init's.
            script.Append("kraud_workload() {\n  exec /bin/busybox env -i");
            foreach (var (key, value) in Environment(spec, rootfs)) script.Append(' ').Append(Quote($"{key}={value}"));
            script.Append(" \"$@\"");
            foreach (var word in argv) script.Append(' ').Append(Quote(word));
            script.Append("\n}\n");
        }
        return script.ToString();
    }

    /// <summary>What the host writes on kraud.config: the script, base64, on one line.</summary>
    public static byte[] Message(string script) => Encoding.ASCII.GetBytes(Convert.ToBase64String(Encoding.UTF8.GetBytes(script)) + "\n");

    private static string Quote(string word) => "'" + word.Replace("'", "'\\''") + "'";
}
