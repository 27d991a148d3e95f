using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace Kraud.Api.WebConsole;

/// <summary>
/// The web console at /console: the static files the console's build (console/, Vite) leaves next to Kraud.Api's binaries.
/// The console is a client of /graphql like any other: it holds the user's API token in the browser's session storage and
/// sends it as a bearer token, so the server keeps no session and sets no cookie a cross-site request could ride on.
/// </summary>
public static class ConsoleSite
{
    public const string Path = "/console";

    /// <summary>
    /// Scripts, styles and images from this origin's files only (no inline script or style, no eval), calls to this
    /// origin only, no plug-ins, no framing, no base or form redirection. Trusted Types with no policy make every
    /// HTML-parsing sink (innerHTML, document.write …) throw, so nothing the API returns can become markup.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; manifest-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

    /// <summary>Where the built console is: `Console:Directory`, else `console/` beside the binaries (the build copies it there).</summary>
    public static string Directory(IConfiguration configuration) =>
        configuration["Console:Directory"] is { Length: > 0 } configured ? configured : System.IO.Path.Combine(AppContext.BaseDirectory, "console");

    public static WebApplication UseKraudConsole(this WebApplication app)
    {
        var directory = Directory(app.Configuration);
        var built = File.Exists(System.IO.Path.Combine(directory, "index.html"));
        if (!built)
            app.Logger.LogWarning("The web console is not built ({Directory} has no index.html): /console answers 404. Build Kraud.Api with node and npm installed.",
                directory);

        app.Map(Path, console =>
        {
            console.Use(async (http, next) =>
            {
                SetSecurityHeaders(http.Response.Headers);
                // /console → /console/: the page's relative links resolve under the console's path.
                if (http.Request.Path is { HasValue: false } && HttpMethods.IsGet(http.Request.Method))
                {
                    http.Response.Redirect(Path + "/" + http.Request.QueryString);
                    return;
                }
                await next(http);
            });
            if (!built) return;
            var files = new PhysicalFileProvider(directory);
            console.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
            console.UseStaticFiles(new StaticFileOptions
            {
                FileProvider = files,
                // Vite names assets by their content hash: they never change. index.html names them, so it is always revalidated.
                OnPrepareResponse = file => file.Context.Response.Headers.CacheControl =
                    file.File.Name == "index.html" ? "no-cache" : "public, max-age=31536000, immutable",
            });
        });
        return app;
    }

    private static void SetSecurityHeaders(IHeaderDictionary headers)
    {
        headers[HeaderNames.ContentSecurityPolicy] = ContentSecurityPolicy;
        headers[HeaderNames.XContentTypeOptions] = "nosniff";
        headers[HeaderNames.XFrameOptions] = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
    }
}
