using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Network;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Kraud.HostRuntime.Ingress;

/// <summary>
/// The reverse proxy of an INGRESS host with a real network: Kestrel and YARP in the host runtime, its listening sockets
/// and its connections to the VPC made inside the host's namespace (<see cref="Netns"/>), so it answers at the host's
/// underlay address and reaches microVMs only through WireGuard (from the host's tunnel address). HTTPS on 443 with
/// certificates of Kraud's ingress CA chosen by SNI, HTTP on 80 redirecting to HTTPS. Routes match Host and path prefix
/// and balance round robin over the pod's running microVMs; a microVM that refuses or does not answer a connection is
/// skipped for <see cref="Reactivation"/> (passive health). A new configuration replaces routes, clusters and
/// certificates in place (YARP's in-memory provider): connections in flight finish on what they started with.
/// </summary>
public sealed class IngressProxy : IAsyncDisposable
{
    public const int HttpsPort = 443;
    public const int HttpPort = 80;
    public static readonly TimeSpan Reactivation = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);

    private readonly WebApplication _app;
    private readonly InMemoryConfigProvider _routes;
    private readonly IngressAuthenticator _auth;
    private readonly ConcurrentQueue<IngressRequestLog> _log = new();
    private volatile IReadOnlyDictionary<string, X509Certificate2> _certificates = new Dictionary<string, X509Certificate2>();
    private volatile IReadOnlyDictionary<Guid, IngressSite> _sites = new Dictionary<Guid, IngressSite>();
    private readonly Lock _lock = new();

    private IngressProxy(WebApplication app, InMemoryConfigProvider routes, IngressAuthenticator auth, string endpoint)
    {
        _app = app;
        _routes = routes;
        _auth = auth;
        Endpoint = endpoint;
    }

    /// <summary>ip:port of the HTTPS listener: what <c>IngressReplica.endpoint</c> shows.</summary>
    public string Endpoint { get; }

    public long Revision { get; private set; }

    public static async Task<IngressProxy> StartAsync(HostNamespace network, ILoggerFactory? loggers, string? trustedCaFile = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (loggers is not null) builder.Services.AddSingleton(loggers);
        var routes = new InMemoryConfigProvider([], []);
        var auth = new IngressAuthenticator(trustedCaFile);
        var https = Listen(network, HttpsPort);
        var http = Listen(network, HttpPort);
        IngressProxy? proxy = null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenHandle((ulong)https.Handle, o => o.UseHttps(h => h.ServerCertificateSelector = (_, name) => proxy!.CertificateFor(name)));
            k.ListenHandle((ulong)http.Handle);
        });
        builder.Services.AddSingleton<IProxyConfigProvider>(routes);
        builder.Services.AddSingleton<IPassiveHealthCheckPolicy, RefusalPolicy>();
        builder.Services.AddReverseProxy().ConfigureHttpClient((_, handler) =>
        {
            handler.ConnectTimeout = ConnectTimeout;
            // Connections into the VPC start in the host's namespace: routed through its WireGuard device.
            handler.ConnectCallback = async (context, ct) =>
            {
                var socket = Netns.Socket(network.Name, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.NoDelay = true;
                    await socket.ConnectAsync(context.DnsEndPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        });
        var app = builder.Build();
        proxy = new IngressProxy(app, routes, auth, $"{network.UnderlayAddress}:{HttpsPort}");
        app.Use(proxy.ServeAsync);
        app.MapReverseProxy(pipeline =>
        {
            pipeline.Use(proxy.AuthenticateAsync);
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        await app.StartAsync();
        return proxy;
    }

    /// <summary>A listening socket of the host's namespace at its underlay address; Kestrel serves it by handle.</summary>
    private static Socket Listen(HostNamespace network, int port)
    {
        var socket = Netns.Socket(network.Name, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(IPAddress.Parse(network.UnderlayAddress), port));
        socket.Listen(1024);
        return socket;
    }

    /// <returns>false when the revision is not newer than the one served.</returns>
    public bool Apply(ApplyIngressConfig config)
    {
        lock (_lock)
        {
            if (config.Revision <= Revision) return false;
            var certificates = new Dictionary<string, X509Certificate2>(StringComparer.OrdinalIgnoreCase);
            foreach (var c in config.Certificates)
            {
                var certificate = X509Certificate2.CreateFromPem(c.CertificatePem, c.KeyPem);
                // Kestrel on Linux wants a certificate whose key it can use for the handshake: an exportable copy does.
                certificate = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
                foreach (var name in c.Names) certificates[name] = certificate;
            }
            var routes = new List<RouteConfig>();
            var clusters = new List<ClusterConfig>();
            foreach (var site in config.Sites)
                foreach (var (route, index) in site.Routes.Select((r, i) => (r, i)))
                {
                    var id = $"{site.IngressId:N}-{index}";
                    var prefix = route.Path.TrimEnd('/');
                    routes.Add(new RouteConfig
                    {
                        RouteId = id, ClusterId = id, Order = -prefix.Length,
                        Match = new RouteMatch { Hosts = [route.Host], Path = prefix + "/{**rest}" },
                        Metadata = new Dictionary<string, string> { ["ingress"] = site.IngressId.ToString() },
                    });
                    clusters.Add(new ClusterConfig
                    {
                        ClusterId = id, LoadBalancingPolicy = "RoundRobin",
                        HealthCheck = new HealthCheckConfig
                        {
                            Passive = new PassiveHealthCheckConfig { Enabled = true, Policy = RefusalPolicy.Name, ReactivationPeriod = Reactivation },
                        },
                        Destinations = route.Backends.ToDictionary(b => b, b => new DestinationConfig { Address = $"http://{b}" }),
                    });
                }
            _sites = config.Sites.ToDictionary(s => s.IngressId);
            _certificates = certificates;
            _auth.Use(config.Sites);
            _routes.Update(routes, clusters);
            Revision = config.Revision;
            return true;
        }
    }

    /// <summary>The requests answered since the last call, for the access log.</summary>
    public IReadOnlyList<IngressRequestLog> DrainLog()
    {
        var list = new List<IngressRequestLog>();
        while (list.Count < 5000 && _log.TryDequeue(out var entry)) list.Add(entry);
        return list;
    }

    /// <summary>By SNI; a client that names no host (or an address) gets the platform's wildcard, as a default server would.</summary>
    private X509Certificate2? CertificateFor(string? name)
    {
        var certificates = _certificates;
        if (name is null || IPAddress.TryParse(name, out _)) return certificates.GetValueOrDefault("*." + Kraud.Domain.Ingresses.Ingress.PlatformDomain);
        if (certificates.TryGetValue(name, out var exact)) return exact;
        var dot = name.IndexOf('.');
        return dot > 0 && certificates.TryGetValue("*" + name[dot..], out var wildcard) ? wildcard : null;
    }

    /// <summary>HTTP goes to HTTPS; every answer through a route is logged for its ingress.</summary>
    private async Task ServeAsync(HttpContext context, RequestDelegate next)
    {
        if (!context.Request.IsHttps)
        {
            context.Response.StatusCode = StatusCodes.Status308PermanentRedirect;
            context.Response.Headers.Location = $"https://{context.Request.Host.Host}{context.Request.PathBase}{context.Request.Path}{context.Request.QueryString}";
            return;
        }
        var started = Stopwatch.GetTimestamp();
        await next(context);
        var proxied = context.Features.Get<Yarp.ReverseProxy.Model.IReverseProxyFeature>();
        if (proxied?.Route.Config.Metadata?.GetValueOrDefault("ingress") is { } ingress)
            _log.Enqueue(new IngressRequestLog(Guid.Parse(ingress), DateTimeOffset.UtcNow, context.Request.Host.Host, context.Request.Path,
                context.Response.StatusCode, proxied.ProxiedDestination?.Model.Config.Address, Stopwatch.GetElapsedTime(started).TotalMilliseconds));
    }

    private async Task AuthenticateAsync(HttpContext context, Func<Task> next)
    {
        // Identity headers come from the proxy only.
        context.Request.Headers.Remove(IngressAuthenticator.UserHeader);
        var ingress = context.GetReverseProxyFeature().Route.Config.Metadata?.GetValueOrDefault("ingress");
        if (ingress is not null && _sites.TryGetValue(Guid.Parse(ingress), out var site) && site.Auth is { } auth)
        {
            var verdict = await _auth.CheckAsync(site, auth, context.Request.Headers.Authorization.ToString(), context.RequestAborted);
            if (verdict.User is null)
            {
                context.Response.StatusCode = verdict.Status;
                if (verdict.Challenge is not null) context.Response.Headers.WWWAuthenticate = verdict.Challenge;
                await context.Response.WriteAsync(verdict.Message + "\n");
                return;
            }
            context.Request.Headers[IngressAuthenticator.UserHeader] = verdict.User;
        }
        await next();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _auth.Dispose();
    }

    /// <summary>One refused or unanswered connection takes a microVM out of the rotation until <see cref="Reactivation"/> passes.</summary>
    private sealed class RefusalPolicy(IDestinationHealthUpdater health) : IPassiveHealthCheckPolicy
    {
        public const string Name = "KraudRefusal";

        string IPassiveHealthCheckPolicy.Name => Name;

        public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
        {
            var error = context.Features.Get<Yarp.ReverseProxy.Forwarder.IForwarderErrorFeature>();
            if (error is null) return;
            health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, cluster.Model.Config.HealthCheck?.Passive?.ReactivationPeriod ?? Reactivation);
        }
    }
}
