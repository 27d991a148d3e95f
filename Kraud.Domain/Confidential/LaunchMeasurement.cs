using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Kraud.Domain.Confidential;

/// <summary>A volume as the guest sees it at launch; part of what a confidential guest's measurement covers.</summary>
public sealed record LaunchVolume(string VolumeId, string MountPath, bool ReadOnly);

/// <summary>
/// Everything the host runtime hands a confidential guest at launch. The control plane measures what it asked for; the
/// host's SEV-SNP firmware reports the measurement of what it actually launched; they must be equal.
/// </summary>
public sealed record LaunchConfiguration(
    string Image, IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Env, int Cpu, int MemoryMiB, int EphemeralGiB,
    IReadOnlyList<LaunchVolume> Volumes)
{
    /// <summary>
    /// The canonical bytes: JSON with a fixed member order, environment sorted by ordinal name and volumes by mount path,
    /// so two parties that agree on the configuration agree on every byte (and hence on the hash).
    /// </summary>
    public byte[] Canonical()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            json.WriteStartObject();
            json.WriteString("format", "kraud-launch/v1");
            json.WriteString("image", Image);
            json.WriteStartArray("command");
            foreach (var part in Command) json.WriteStringValue(part);
            json.WriteEndArray();
            json.WriteStartObject("env");
            foreach (var (key, value) in Env.OrderBy(e => e.Key, StringComparer.Ordinal)) json.WriteString(key, value);
            json.WriteEndObject();
            json.WriteNumber("cpu", Cpu);
            json.WriteNumber("memoryMiB", MemoryMiB);
            json.WriteNumber("ephemeralGiB", EphemeralGiB);
            json.WriteStartArray("volumes");
            foreach (var v in Volumes.OrderBy(v => v.MountPath, StringComparer.Ordinal).ThenBy(v => v.VolumeId, StringComparer.Ordinal))
            {
                json.WriteStartObject();
                json.WriteString("volumeId", v.VolumeId);
                json.WriteString("mountPath", v.MountPath);
                json.WriteBoolean("readOnly", v.ReadOnly);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>SHA-256 of <see cref="Canonical"/>, lowercase hex: the launch measurement.</summary>
    public string Measurement() => Convert.ToHexStringLower(SHA256.HashData(Canonical()));

    public override string ToString() => Encoding.UTF8.GetString(Canonical());
}

public static class LaunchConfigurations
{
    /// <summary>What the control plane asks for, its volume mounts included.</summary>
    public static LaunchConfiguration For(Pods.PodSpec spec) =>
        new(spec.Image, spec.Command, spec.Env, spec.Cpu, spec.MemoryMiB, spec.EphemeralGiB,
            spec.Mounts.Select(m => new LaunchVolume(m.VolumeId.ToString(), m.MountPath, m.ReadOnly)).ToList());

    /// <summary>What a host runtime was told to launch.</summary>
    public static LaunchConfiguration For(HostProtocol.MicroVmSpec spec) =>
        new(spec.Image, spec.Command, spec.Env, spec.Cpu, spec.MemoryMiB, spec.EphemeralGiB,
            spec.Attachments.Select(v => new LaunchVolume(v.VolumeId.ToString(), v.MountPath, v.ReadOnly)).ToList());
}
