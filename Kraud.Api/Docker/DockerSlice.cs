using Kraud.Api.Common;

namespace Kraud.Api.Docker;

/// <summary>The Docker Engine API: a listener of its own (Docker:Url), off unless configured.</summary>
public sealed class DockerSlice : KraudSlice
{
    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(DockerApiOptions.Section).Get<DockerApiOptions>() ?? new DockerApiOptions());
        services.AddSingleton<DockerApiServer>();
        services.AddHostedService(sp => sp.GetRequiredService<DockerApiServer>());
    }
}
