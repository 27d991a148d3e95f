using Kraud.Domain.Images;

namespace Kraud.HostRuntime.Images;

/// <summary>
/// The "Images" configuration section, read by the control plane (which resolves images) and by host runtimes (which pull
/// them); both must agree. Like Docker's daemon.json: registry mirrors and the registries allowed without TLS.
/// </summary>
public sealed class RegistryOptions
{
    public const string Section = "Images";

    /// <summary>
    /// Endpoints to ask before the registry itself, by registry (e.g. "docker.io": ["http://127.0.0.1:5000"]), as Docker's
    /// registry-mirrors. The next endpoint is asked only when one cannot be reached: a mirror's "no such image" is final.
    /// </summary>
    public Dictionary<string, List<string>> Mirrors { get; set; } = [];

    /// <summary>
    /// Registries that may be spoken to over plain HTTP, as Docker's insecure-registries: host[:port], or a network in CIDR
    /// form (127.0.0.0/8) whose addresses it covers on any port. All others need TLS.
    /// </summary>
    public List<string> InsecureRegistries { get; set; } = [];

    /// <summary>A registry that does not answer a request for a manifest or token within this long is unreachable.</summary>
    public int TimeoutSeconds { get; set; } = 20;

    public bool IsInsecure(string hostPort)
    {
        var registry = ImageReference.NormalizeRegistry(hostPort);
        var host = registry.LastIndexOf(':') is var colon and > 0 ? registry[..colon] : registry;
        return InsecureRegistries.Any(r => r.Contains('/')
            ? System.Net.IPNetwork.TryParse(r, out var network) && System.Net.IPAddress.TryParse(host, out var address) && network.Contains(address)
            : string.Equals(ImageReference.NormalizeRegistry(r), registry, StringComparison.Ordinal));
    }

    /// <summary>Where the registry's API is: Docker Hub's API lives on registry-1.docker.io.</summary>
    public Uri EndpointOf(string registry)
    {
        var host = registry == ImageReference.DockerHub ? "registry-1.docker.io" : registry;
        return new Uri($"{(IsInsecure(registry) ? "http" : "https")}://{host}/");
    }

    /// <summary>The mirrors of this registry, then the registry itself.</summary>
    public IReadOnlyList<RegistryEndpoint> EndpointsOf(string registry)
    {
        var endpoints = new List<RegistryEndpoint>();
        foreach (var (name, urls) in Mirrors)
        {
            if (ImageReference.NormalizeRegistry(name) != registry) continue;
            foreach (var url in urls)
            {
                var uri = new Uri(url.EndsWith('/') ? url : url + "/");
                if (uri.Scheme == "http" && !IsInsecure(uri.Authority))
                    throw new InvalidOperationException(
                        $"Images:Mirrors names {url} for {registry} over plain HTTP, but {uri.Authority} is not in Images:InsecureRegistries.");
                endpoints.Add(new RegistryEndpoint(uri, Mirror: true));
            }
        }
        endpoints.Add(new RegistryEndpoint(EndpointOf(registry), Mirror: false));
        return endpoints;
    }
}

/// <summary>One base URL a registry's content is asked at; credentials go only to the registry itself, never to a mirror.</summary>
public sealed record RegistryEndpoint(Uri BaseUri, bool Mirror);
