using System.Diagnostics;
using PuppeteerSharp;

namespace Kraud.Tests.Console;

/// <summary>
/// Debian's chromium, headless, with a profile of its own that is deleted afterwards; PuppeteerSharp drives it over the
/// DevTools protocol and never downloads a browser. KRAUD_CHROMIUM names another executable.
/// </summary>
public sealed class Chromium : IAsyncDisposable
{
    public const string DefaultPath = "/usr/bin/chromium";

    private readonly DirectoryInfo _profile;
    private readonly Process? _process;

    private Chromium(IBrowser browser, DirectoryInfo profile)
    {
        Browser = browser;
        _profile = profile;
        _process = browser.Process;
    }

    public IBrowser Browser { get; }

    public static async Task<Chromium> LaunchAsync()
    {
        var executable = Environment.GetEnvironmentVariable("KRAUD_CHROMIUM") is { Length: > 0 } configured ? configured : DefaultPath;
        if (!File.Exists(executable))
            throw new InvalidOperationException($"Chromium is not installed at {executable} (Debian: apt-get install chromium; ./test.sh installs it).");
        var profile = Directory.CreateTempSubdirectory("kraud-chromium-");
        try
        {
            var browser = await Puppeteer.LaunchAsync(new LaunchOptions
            {
                ExecutablePath = executable,
                Headless = true,
                UserDataDir = profile.FullName,
                Timeout = 120_000, // a cold start on a loaded 2-core machine
                DefaultViewport = new ViewPortOptions { Width = 1360, Height = 900 },
                // As root there is no sandbox; the rest keeps Chromium from calling out to Google's services, which this
                // machine's closed network refuses.
                Args =
                [
                    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--lang=en-GB",
                ],
            });
            return new Chromium(browser, profile);
        }
        catch
        {
            profile.Delete(recursive: true);
            throw;
        }
    }

    /// <summary>A page in an incognito-like context of its own: no storage shared with other tests.</summary>
    public async Task<ConsolePage> NewPageAsync(Uri baseAddress)
    {
        var context = await Browser.CreateBrowserContextAsync();
        var page = await context.NewPageAsync();
        page.DefaultTimeout = 60_000;
        return new ConsolePage(context, page, baseAddress);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Browser.CloseAsync().WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (Exception e) when (e is TimeoutException or PuppeteerException)
        {
            // Killed below.
        }
        if (_process is { HasExited: false }) _process.Kill(entireProcessTree: true);
        await Browser.DisposeAsync();
        if (_profile.Exists) _profile.Delete(recursive: true);
    }
}
