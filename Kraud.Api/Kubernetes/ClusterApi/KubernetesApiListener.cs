using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Kraud.Api.Kubernetes.ClusterApi;

public sealed class KubernetesApiOptions
{
    public const string Section = "Kubernetes";

    /// <summary>
    /// Where the clusters' Kubernetes API listens, e.g. https://127.0.0.1:6443 (port 0: a free one). Unset: not served,
    /// and kubeconfigs name no reachable server.
    /// </summary>
    public string? ApiUrl { get; set; }

    /// <summary>How often watches look for changes.</summary>
    public int WatchPollMs { get; set; } = 250;
}

/// <summary>
/// One HTTPS listener for every cluster's Kubernetes API, beside the GraphQL API (a Kestrel server of its own, so it also
/// runs under the in-memory test server). The client names its cluster twice: by TLS server name (SNI, which picks the
/// certificate under that cluster's CA) and by path (/clusters/&lt;id&gt;); both must agree.
/// </summary>
public sealed class KubernetesApiListener(
    IServiceProvider services, KubernetesApiOptions options, ServingCertificates certificates, ILogger<KubernetesApiListener> logger) : IHostedService
{
    private WebApplication? server;

    /// <summary>The address clients reach, with the port actually bound; null while not served.</summary>
    public Uri? BaseAddress { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.ApiUrl)) return;
        var url = new Uri(options.ApiUrl);
        if (url.Scheme != Uri.UriSchemeHttps) throw new InvalidOperationException($"Kubernetes:ApiUrl must be an https URL, not '{options.ApiUrl}'.");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = 3 * 1024 * 1024;
            var address = url.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(url.Host);
            kestrel.Listen(address, url.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(new TlsHandshakeCallbackOptions { OnConnection = context => HandshakeAsync(context.ClientHelloInfo, context.CancellationToken) });
            });
        });
        server = builder.Build();
        var router = new KubeRouter(services);
        server.Run(router.HandleAsync);
        await server.StartAsync(cancellationToken);
        var bound = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        logger.LogWarning("The Kubernetes API of every cluster is served at {Address}/clusters/<cluster id>", BaseAddress);
    }

    private async ValueTask<SslServerAuthenticationOptions> HandshakeAsync(SslClientHelloInfo hello, CancellationToken ct)
    {
        var certificate = await certificates.ForServerNameAsync(hello.ServerName, ct)
                          ?? throw new AuthenticationException($"No cluster is served under the TLS server name '{hello.ServerName}'.");
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = certificate,
            // Asked for, not required: bearer tokens authenticate too. Which CA signed it is checked per request against the
            // cluster of the path (ClusterAccess), where a refusal can be a Kubernetes Status.
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        };
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (server is null) return;
        await server.StopAsync(cancellationToken);
        await server.DisposeAsync();
    }
}
