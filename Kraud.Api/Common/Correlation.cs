namespace Kraud.Api.Common;

/// <summary>
/// Every request gets a correlation id (the client's X-Correlation-Id, or a new one): it is returned in the response,
/// named in every log line of the request, and carried by every message and event the request causes.
/// </summary>
public static class Correlation
{
    public const string Header = "X-Correlation-Id";
    private const string Key = "kraud.correlation";

    public static string Of(HttpContext http) => http.Items[Key] as string ?? "";

    public static IApplicationBuilder UseCorrelation(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        var incoming = http.Request.Headers[Header].ToString();
        var id = incoming.Length is > 0 and <= 128 && incoming.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            ? incoming
            : Guid.NewGuid().ToString("N");
        http.Items[Key] = id;
        http.Response.Headers[Header] = id;
        var logger = http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Kraud.Requests");
        using (logger.BeginScope(new Dictionary<string, object> { ["CorrelationId"] = id }))
            await next(http);
    });
}
