using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Api.Docker;

/// <summary>The "Docker" configuration section: the Docker Engine API listener, off unless <see cref="Url"/> is set.</summary>
public sealed class DockerApiOptions
{
    public const string Section = "Docker";

    /// <summary>Where the Docker Engine API listens (e.g. http://127.0.0.1:2375; port 0 picks a free one). Null: not served.</summary>
    public string? Url { get; set; }
}

/// <summary>
/// The subset of the Docker Engine API (version 1.41) that `docker run -d`, `ps`, `logs`, `inspect`, `stop`, `start`,
/// `restart`, `rm`, `version` and `info` use, on a listener of its own (Kestrel on Docker:Url), served from the same
/// services as the GraphQL API: a container is a pod, and every change goes through the same commands, events, audit
/// entries and errors as its GraphQL mutation. Callers authenticate with a tenant's token as `Authorization: Bearer`
/// (the docker CLI sends it from HttpHeaders in its config.json).
/// </summary>
public sealed class DockerApiServer(DockerApiOptions options, IServiceProvider services, ILogger<DockerApiServer> logger) : IHostedService, IAsyncDisposable
{
    public const string ApiVersion = "1.41", MinApiVersion = "1.24";

    internal static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    private WebApplication? _app;
    private HalfCloseFront? _front;

    /// <summary>The address it listens on once started (the port it got when Docker:Url asked for port 0).</summary>
    public Uri? Url { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.Url)) return;
        var url = Uri.TryCreate(options.Url, UriKind.Absolute, out var parsed) && parsed.Scheme == Uri.UriSchemeHttp
            ? parsed
            : throw new InvalidOperationException($"Docker:Url must be an http:// URL with a host and a port (e.g. http://127.0.0.1:2375), not '{options.Url}'");
        var bind = url.Host switch
        {
            "localhost" => IPAddress.Loopback,
            "*" or "+" or "0.0.0.0" => IPAddress.Any,
            _ => IPAddress.TryParse(url.Host.Trim('[', ']'), out var address)
                ? address
                : throw new InvalidOperationException($"Docker:Url must name an IP address or localhost, not '{url.Host}'"),
        };
        // An empty builder: no configuration, logging or URLs of the application's (appsettings' Urls would win over a
        // UseUrls here), only Kestrel and routing. Kestrel listens on a loopback port of its own behind the front (below).
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        builder.Services.AddRoutingCore();
        builder.Services.AddSingleton(new ApplicationServices(services));
        var app = builder.Build();
        app.UseRouting();
        DockerSystem.Map(app);
        DockerRun.Map(app);
        DockerPs.Map(app);
        DockerLogs.Map(app);
        DockerAttach.Map(app);
        DockerLifecycle.Map(app);
        // Any other route (images, networks, volumes, swarm objects that `docker inspect` also tries): Docker's "not found".
        app.MapFallback((HttpContext http) => Error(http, StatusCodes.Status404NotFound, $"page not found: {http.Request.Method} {http.Request.Path} is not served by Kraud"));
        await app.StartAsync(cancellationToken);
        _app = app;
        var backend = new Uri(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features
            .Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First());
        _front = HalfCloseFront.Start(new IPEndPoint(bind, url.Port), new IPEndPoint(IPAddress.Loopback, backend.Port), logger);
        // The bound address: with port 0 the kernel chose one.
        Url = new Uri($"http://{(bind.Equals(IPAddress.Any) ? "127.0.0.1" : url.Host)}:{_front.Port.ToString(CultureInfo.InvariantCulture)}");
        logger.LogInformation("Docker Engine API (v{Version}) on {Url}", ApiVersion, Url);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await StopFrontAsync();
        if (_app is not null) await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        // The host stops the server and then disposes it: the front is closed once.
        await StopFrontAsync();
        if (_app is not null) await _app.DisposeAsync();
    }

    private async Task StopFrontAsync()
    {
        if (Interlocked.Exchange(ref _front, null) is { } front) await front.DisposeAsync();
    }

    /// <summary>Maps a route with and without the API version prefix (/v1.41/containers/json and /containers/json).</summary>
    internal static void Route(WebApplication app, string method, string pattern, Func<DockerCall, Task<IResult>> handle)
    {
        foreach (var prefix in new[] { "", "/v{version}" })
            // A RequestDelegate (HttpContext to Task) would drop the result: it is executed here.
            app.MapMethods(prefix + pattern, [method], async (HttpContext http) => await (await CallAsync(http, handle)).ExecuteAsync(http));
    }

    private static async Task<IResult> CallAsync(HttpContext http, Func<DockerCall, Task<IResult>> handle)
    {
        await using var scope = http.RequestServices.GetRequiredService<ApplicationServices>().Provider.CreateAsyncScope();
        var principal = await scope.ServiceProvider.GetRequiredService<TokenAuthenticator>()
            .AuthenticateAsync(http.Request.Headers.Authorization.ToString(), http.RequestAborted);
        if (principal is null)
            return Error(http, StatusCodes.Status401Unauthorized,
                "Kraud needs a tenant API token: put {\"HttpHeaders\": {\"Authorization\": \"Bearer <token>\"}} in the docker CLI's config.json");
        var correlation = Guid.NewGuid().ToString("N");
        var caller = new Caller(principal, http.Connection.RemoteIpAddress?.ToString(), correlation);
        http.Response.Headers[Correlation.Header] = correlation;
        try
        {
            return await handle(new DockerCall(http, caller, scope.ServiceProvider));
        }
        catch (Exception e) when (Gql.ErrorCodes.Map(e) is { } refusal)
        {
            return Error(http, refusal.Code switch
            {
                "NOT_FOUND" => StatusCodes.Status404NotFound,
                "CONFLICT" => StatusCodes.Status409Conflict,
                "FORBIDDEN" => StatusCodes.Status403Forbidden,
                "UNAUTHENTICATED" => StatusCodes.Status401Unauthorized,
                _ => StatusCodes.Status400BadRequest,
            }, $"{refusal.Code}: {refusal.Message}");
        }
        catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            scope.ServiceProvider.GetRequiredService<ILogger<DockerApiServer>>().LogError(e, "Docker API {Method} {Path} failed", http.Request.Method, http.Request.Path);
            return Error(http, StatusCodes.Status500InternalServerError, $"Kraud could not answer {http.Request.Method} {http.Request.Path}: {e.Message}");
        }
    }

    /// <summary>Docker's error body: the CLI prints "Error response from daemon: " and the message.</summary>
    internal static IResult Error(HttpContext http, int status, string message) => Results.Json(new { message }, Json, statusCode: status);
}

/// <summary>One call of the Docker API: the request, who makes it, and the application's services for this request.</summary>
public sealed record DockerCall(HttpContext Http, Caller Caller, IServiceProvider Services)
{
    public Principal Principal => Caller.Principal;

    public T Service<T>() where T : notnull => Services.GetRequiredService<T>();

    public DateTimeOffset Now => Service<TimeProvider>().GetUtcNow();

    /// <summary>Containers are a tenant's pods: operators and auditors have none.</summary>
    public Guid Tenant => Principal.TenantId is { } tenant && Principal.Role is Role.Admin or Role.Member
        ? tenant
        : throw DomainException.Forbidden("The Docker API serves a tenant's containers: use an ADMIN or MEMBER token of the tenant.");

    public Task InvokeAsync(object command) => Gql.ResolveContext.InvokeCommandAsync(Services, Caller, command, Http.RequestAborted);

    public string Query(string name) => Http.Request.Query[name].ToString();

    public bool Flag(string name) => Query(name) is "1" or "true" or "True";
}

/// <summary>The application's services, as the Docker listener's own request pipeline reaches them.</summary>
internal sealed record ApplicationServices(IServiceProvider Provider);

/// <summary>
/// The Docker listener's TCP front, which passes bytes both ways between a client and Kestrel. It is there for one
/// thing: the docker CLI half-closes an attached connection (it has no stdin to send, so it shuts down its sending side
/// at once) and then reads the container's output for as long as the container runs, as the Docker daemon allows;
/// Kestrel takes a client's FIN for the end of the connection and aborts the response. So a FIN from the client is
/// passed on to Kestrel only on connections that were not upgraded (HTTP/1.1 101): there it still means the client is
/// gone. On an upgraded one, the client's going shows as a failed write, and the front then closes both sides.
/// </summary>
internal sealed class HalfCloseFront : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _backend;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task _accepting = Task.CompletedTask;

    private HalfCloseFront(TcpListener listener, IPEndPoint backend, ILogger logger) => (_listener, _backend, _logger) = (listener, backend, logger);

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public static HalfCloseFront Start(IPEndPoint bind, IPEndPoint backend, ILogger logger)
    {
        var listener = new TcpListener(bind);
        listener.Start();
        var front = new HalfCloseFront(listener, backend, logger);
        front._accepting = front.AcceptAsync();
        return front;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        var backend = new TcpClient();
        Task toClient = Task.CompletedTask, toBackend = Task.CompletedTask;
        try
        {
            await backend.ConnectAsync(_backend, _stop.Token);
            var upgraded = false;
            toClient = PumpAsync(backend.GetStream(), client.GetStream(), first => Volatile.Write(ref upgraded, first.StartsWith("HTTP/1.1 101", StringComparison.Ordinal)));
            toBackend = PumpAsync(client.GetStream(), backend.GetStream(), null);
            if (await Task.WhenAny(toClient, toBackend) == toBackend)
            {
                // The client is done sending (FIN) or gone (reset).
                if (!toBackend.IsCompletedSuccessfully) backend.Client.Close();
                else if (!Volatile.Read(ref upgraded)) backend.Client.Shutdown(SocketShutdown.Send);
                await toClient;
            }
            client.Client.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Docker API connection ended: {Reason}", e.Message);
        }
        finally
        {
            client.Dispose();
            backend.Dispose();
            await toClient.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await toBackend.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>Copies until the source ends; <paramref name="onFirst"/> sees the start of the first chunk (the status line of a response).</summary>
    private async Task PumpAsync(NetworkStream from, NetworkStream to, Action<string>? onFirst)
    {
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
        {
            if (onFirst is not null)
            {
                onFirst(System.Text.Encoding.ASCII.GetString(buffer, 0, Math.Min(read, 16)));
                onFirst = null;
            }
            await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _listener.Dispose();
        _stop.Dispose();
    }
}
