using System.Net;
using Kraud.Api.WebConsole;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Console;

/// <summary>What the console's server side promises: a strict policy on every response, no cookies, the token in session storage only.</summary>
[Collection(ConsoleCollection.Name)]
public class ConsoleSecuritySpecs(ConsoleApp app)
{
    [Fact]
    public async Task the_console_is_served_with_a_strict_content_security_policy_and_sets_no_cookie()
    {
        using var redirect = await new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = app.BaseAddress }.GetAsync("/console");
        Assert.Equal(HttpStatusCode.Redirect, redirect.StatusCode);
        Assert.Equal("/console/", redirect.Headers.Location!.OriginalString);

        using var index = await app.Http.GetAsync("/console/");
        Assert.Equal(HttpStatusCode.OK, index.StatusCode);
        var html = await index.Content.ReadAsStringAsync();
        var policy = index.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Equal(ConsoleSite.ContentSecurityPolicy, policy);
        var directives = policy.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .ToDictionary(d => d.Split(' ')[0], d => d.Split(' ').Skip(1).ToArray());
        Assert.Equal(["'none'"], directives["default-src"]);
        Assert.Equal(["'self'"], directives["script-src"]);
        Assert.Equal(["'self'"], directives["style-src"]);
        Assert.Equal(["'self'"], directives["connect-src"]);
        Assert.Equal(["'none'"], directives["frame-ancestors"]);
        Assert.Equal(["'script'"], directives["require-trusted-types-for"]);
        Assert.DoesNotContain("unsafe", policy, StringComparison.Ordinal);
        Assert.Equal("nosniff", index.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.False(index.Headers.Contains("Set-Cookie"));
        // No inline script or style in the page itself: everything is an external file of this origin.
        Assert.DoesNotMatch("<script(?![^>]*\\ssrc=)", html);
        Assert.DoesNotContain("style=", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<style", html, StringComparison.Ordinal);
        var script = System.Text.RegularExpressions.Regex.Match(html, "src=\"(?<js>/console/assets/[^\"]+\\.js)\"", System.Text.RegularExpressions.RegexOptions.None,
            TimeSpan.FromSeconds(1)).Groups["js"].Value;
        using var asset = await app.Http.GetAsync(script);
        Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
        Assert.Equal("text/javascript", asset.Content.Headers.ContentType!.MediaType);
        Assert.Equal(ConsoleSite.ContentSecurityPolicy, asset.Headers.GetValues("Content-Security-Policy").Single());

        var me = await app.AsOperator("{ me { role } }");
        Assert.Equal(200, me.Status);
    }

    [Fact]
    public async Task in_the_browser_inline_scripts_handlers_and_markup_sinks_are_refused_and_the_token_lives_in_session_storage_only()
    {
        var tenant = await ConsoleTenant.CreateAsync(app, "csp");
        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(tenant.Token);

        var probe = await page.Page.EvaluateExpressionAsync<string[]>("""
            (() => {
              const out = [];
              // (eval is not probed here: code DevTools evaluates is exempt from the page's policy; the header test covers 'unsafe-eval'.)
              try { const b = document.createElement("button"); b.setAttribute("onclick", "window.__handler = 1"); document.body.appendChild(b); b.click(); b.remove(); }
              catch (e) { out.push("handler refused: " + e.name); }
              out.push("handler=" + (window.__handler ?? "none"));
              try { const s = document.createElement("script"); s.textContent = "window.__inline = 1"; document.body.appendChild(s); out.push("script text set"); }
              catch (e) { out.push("script refused: " + e.name); }
              try { document.body.innerHTML += "<b>x</b>"; out.push("innerHTML ran"); } catch (e) { out.push("innerHTML refused: " + e.name); }
              out.push("inline=" + (window.__inline ?? "none"));
              out.push("cookie=" + document.cookie);
              out.push("session=" + (sessionStorage.getItem("kraud.token") ? "token" : "none"));
              out.push("local=" + localStorage.length);
              return out;
            })()
            """);
        Assert.Equal(["handler=none", "script refused: TypeError", "innerHTML refused: TypeError", "inline=none", "cookie=", "session=token", "local=0"],
            probe.Where(p => !p.StartsWith("handler refused", StringComparison.Ordinal)));
        Assert.Contains(page.Errors, e => e.Contains("Content Security Policy", StringComparison.OrdinalIgnoreCase) || e.Contains("Trusted", StringComparison.Ordinal));

        // Signing out forgets the token.
        await page.Page.ClickAsync("[data-testid=sign-out]");
        await page.WaitForAsync("[data-testid=token]");
        Assert.Null(await page.Page.EvaluateExpressionAsync<string?>("sessionStorage.getItem('kraud.token')"));
    }
}
