using Kraud.Api.Common;

namespace Kraud.Api.WebConsole;

/// <summary>The web console: static files at /console, a client of /graphql like any other.</summary>
public sealed class WebConsoleSlice : KraudSlice
{
    public override void UsePipeline(WebApplication app) => app.UseKraudConsole();
}
