using System.Text.Json;
using System.Text.Json.Serialization;
using Kraud.Api.Access;
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

    /// <summary>The address it listens on once started (the port it got when Docker:Url asked for port 0).</summary>
    public Uri? Url { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.Url)) return;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Url);
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(new ApplicationServices(services));
        var app = builder.Build();
        DockerSystem.Map(app);
        DockerRun.Map(app);
        DockerPs.Map(app);
        DockerLogs.Map(app);
        DockerLifecycle.Map(app);
        // Any other route (images, networks, volumes, swarm objects that `docker inspect` also tries): Docker's "not found".
        app.MapFallback((HttpContext http) => Error(http, StatusCodes.Status404NotFound, $"page not found: {http.Request.Method} {http.Request.Path} is not served by Kraud"));
        await app.StartAsync(cancellationToken);
        _app = app;
        Url = new Uri(app.Urls.First());
        logger.LogInformation("Docker Engine API (v{Version}) on {Url}", ApiVersion, Url);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null) await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
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
        catch (Exception e) when (Configuration.ErrorCodes.Map(e) is { } refusal)
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
