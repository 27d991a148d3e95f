using PuppeteerSharp;

namespace Kraud.Tests.Console;

/// <summary>One browser tab on the console, with the errors the page logged (script errors, Content-Security-Policy violations).</summary>
public sealed class ConsolePage : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly Uri _baseAddress;
    private readonly List<string> _errors = [];

    public ConsolePage(IBrowserContext context, IPage page, Uri baseAddress)
    {
        _context = context;
        _baseAddress = baseAddress;
        Page = page;
        page.Console += (_, e) =>
        {
            if (e.Message.Type == ConsoleType.Error) lock (_errors) _errors.Add(e.Message.Text);
        };
        page.PageError += (_, e) =>
        {
            lock (_errors) _errors.Add(e.Message);
        };
    }

    public IPage Page { get; }

    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (_errors) return _errors.ToList();
        }
    }

    public Uri ConsoleUrl => new(_baseAddress, "/console/");

    public async Task SignInAsync(string token)
    {
        await Page.GoToAsync(ConsoleUrl.ToString(), WaitUntilNavigation.Load);
        await Page.WaitForSelectorAsync("[data-testid=token]");
        await Page.TypeAsync("[data-testid=token]", token);
        await Page.ClickAsync("[data-testid=sign-in]");
        await Page.WaitForSelectorAsync("[data-testid=who]");
    }

    /// <summary>Goes to a page of the console the way a link does (the console routes on the URL's fragment).</summary>
    public async Task OpenAsync(string route)
    {
        await Page.EvaluateFunctionAsync("r => { location.hash = r; }", "#/" + route);
        await Page.WaitForSelectorAsync("main#main");
    }

    public Task<IElementHandle> WaitForAsync(string selector, int timeoutMs = 60_000) =>
        Page.WaitForSelectorAsync(selector, new WaitForSelectorOptions { Timeout = timeoutMs });

    public async Task WaitUntilGoneAsync(string selector, int timeoutMs = 60_000) =>
        await Page.WaitForSelectorAsync(selector, new WaitForSelectorOptions { Hidden = true, Timeout = timeoutMs });

    public Task<string> TextAsync(string selector) => Page.EvaluateFunctionAsync<string>("s => document.querySelector(s)?.textContent ?? ''", selector);

    public Task<int> CountAsync(string selector) => Page.EvaluateFunctionAsync<int>("s => document.querySelectorAll(s).length", selector);

    /// <summary>Saves a screenshot of the whole page under <see cref="Screenshots.Directory"/>.</summary>
    public async Task ScreenshotAsync(string name)
    {
        Directory.CreateDirectory(Screenshots.Directory);
        await Page.ScreenshotAsync(Path.Combine(Screenshots.Directory, name + ".png"), new ScreenshotOptions { FullPage = false });
    }

    public void ShouldHaveLoggedNoErrors() => Assert.True(Errors.Count == 0, "The page logged errors:\n" + string.Join("\n", Errors));

    public async ValueTask DisposeAsync() => await _context.CloseAsync();
}

/// <summary>
/// Where the tests leave their screenshots: KRAUD_CONSOLE_SCREENSHOTS (relative to the repository), else
/// TestResults/console. `KRAUD_CONSOLE_SCREENSHOTS=docs/console` refreshes the README's pictures.
/// </summary>
public static class Screenshots
{
    public static string Directory { get; } = Resolve();

    private static string Resolve()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Kraud.sln"))) root = root.Parent;
        var repository = root?.FullName ?? Path.GetTempPath();
        var configured = Environment.GetEnvironmentVariable("KRAUD_CONSOLE_SCREENSHOTS");
        return configured is { Length: > 0 } ? Path.GetFullPath(configured, repository) : Path.Combine(repository, "TestResults", "console");
    }
}
