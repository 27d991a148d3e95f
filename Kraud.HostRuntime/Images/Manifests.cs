using System.Security.Cryptography;
using System.Text.Json;

namespace Kraud.HostRuntime.Images;

/// <summary>The media types of the OCI image spec and of Docker's image manifest v2 schema 2, which registries serve alike.</summary>
public static class MediaTypes
{
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciLayer = "application/vnd.oci.image.layer.v1.tar";
    public const string DockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    public static readonly string[] Accepted = [OciIndex, DockerList, OciManifest, DockerManifest];

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerList;

    public static bool IsManifest(string mediaType) => mediaType is OciManifest or DockerManifest;

    /// <summary>Layer types an unpacker of the OCI spec applies; Docker's gzip layers are the same bytes under another name.</summary>
    public static string? OciLayerType(string mediaType) => mediaType switch
    {
        OciLayerGzip or DockerLayerGzip => OciLayerGzip,
        OciLayer or "application/vnd.docker.image.rootfs.diff.tar" => OciLayer,
        _ => null,
    };
}

public sealed record Descriptor(string MediaType, string Digest, long Size);

public sealed record PlatformDescriptor(Descriptor Descriptor, string? Os, string? Architecture, string? Variant);

/// <summary>A manifest or index as a registry served it: the exact bytes (their SHA-256 is the digest) and what they say.</summary>
public sealed record ManifestDocument(string MediaType, string Digest, byte[] Bytes)
{
    public bool IsIndex => MediaTypes.IsIndex(MediaType);

    public IReadOnlyList<PlatformDescriptor> Platforms()
    {
        using var json = JsonDocument.Parse(Bytes);
        return json.RootElement.GetProperty("manifests").EnumerateArray().Select(m =>
        {
            var platform = m.TryGetProperty("platform", out var p) ? p : default;
            return new PlatformDescriptor(DescriptorOf(m), Text(platform, "os"), Text(platform, "architecture"), Text(platform, "variant"));
        }).ToList();
    }

    public Descriptor Config()
    {
        using var json = JsonDocument.Parse(Bytes);
        return DescriptorOf(json.RootElement.GetProperty("config"));
    }

    public IReadOnlyList<Descriptor> Layers()
    {
        using var json = JsonDocument.Parse(Bytes);
        return json.RootElement.GetProperty("layers").EnumerateArray().Select(DescriptorOf).ToList();
    }

    private static Descriptor DescriptorOf(JsonElement e) =>
        new(e.GetProperty("mediaType").GetString() ?? "", e.GetProperty("digest").GetString() ?? "", e.GetProperty("size").GetInt64());

    private static string? Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>The media type a manifest states in its body, for registries that answer with a generic content type.</summary>
    public static string? DeclaredMediaType(byte[] bytes)
    {
        try
        {
            using var json = JsonDocument.Parse(bytes);
            if (json.RootElement.TryGetProperty("mediaType", out var m) && m.ValueKind == JsonValueKind.String) return m.GetString();
            if (json.RootElement.TryGetProperty("manifests", out _)) return MediaTypes.OciIndex;
            if (json.RootElement.TryGetProperty("layers", out _)) return MediaTypes.OciManifest;
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>What an image's config says about how to run it (the "config" object of the OCI image configuration).</summary>
public sealed record ImageRunConfig(
    IReadOnlyList<string> Entrypoint, IReadOnlyList<string> Cmd, IReadOnlyList<string> Env, string WorkingDir, string User, string Os,
    string Architecture)
{
    public static ImageRunConfig Parse(byte[] configBlob)
    {
        using var json = JsonDocument.Parse(configBlob);
        var root = json.RootElement;
        var config = root.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object ? c : default;
        return new ImageRunConfig(Strings(config, "Entrypoint"), Strings(config, "Cmd"), Strings(config, "Env"), Text(config, "WorkingDir"),
            Text(config, "User"), Text(root, "os"), Text(root, "architecture"));
    }

    private static IReadOnlyList<string> Strings(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(s => s.GetString() ?? "").ToList()
            : [];

    private static string Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : "";
}

public static class Digests
{
    public static string Of(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>The hex part of a sha256 digest; anything else is refused (digests name files in the cache).</summary>
    public static string Hex(string digest) => Kraud.Domain.Images.ImageReference.IsDigest(digest)
        ? digest[7..]
        : throw new RegistryException(RegistryFailure.Invalid, $"'{digest}' is not a sha256 digest");
}
