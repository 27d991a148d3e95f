using Kraud.Api.Common;

namespace Kraud.Api.Replay;

/// <summary>Replay for incident reviews: timelines, the platform at a past moment and its checkpoints, incidents, projection rebuilds.</summary>
public sealed class ReplaySlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        TimelineQuery.Map(fields);
        PlatformAtQuery.Map(fields);
        IncidentQuery.Map(fields);
        RebuildProjectionFields.Map(fields);
    }

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton<EventLog>();
        services.AddSingleton<ArchiveBoundary>();
        services.AddSingleton(sp => sp.GetRequiredService<IConfiguration>().GetSection(ReplayOptions.Section).Get<ReplayOptions>() ?? new ReplayOptions());
        services.AddSingleton<PlatformCheckpointer>();
        services.AddHostedService(sp => sp.GetRequiredService<PlatformCheckpointer>());
        // The checkpoints are a read model (Kraud.Projections): pod(asOf:) and volume(asOf:) read them too.
        services.AddSingleton(sp => sp.GetRequiredService<PlatformCheckpointer>().Checkpoints);
        services.AddSingleton<RebuildJobs>();
    }
}
