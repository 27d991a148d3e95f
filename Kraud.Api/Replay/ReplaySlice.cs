using Kraud.Api.Common;

namespace Kraud.Api.Replay;

/// <summary>Replay for incident reviews: timelines, the platform at a past moment, incidents.</summary>
public sealed class ReplaySlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        TimelineQuery.Map(fields);
        PlatformAtQuery.Map(fields);
        IncidentQuery.Map(fields);
    }

    public override void AddServices(IServiceCollection services) => services.AddSingleton<EventLog>();
}
