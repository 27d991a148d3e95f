using JasperFx.Events;
using Kraud.Domain.Apps;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Apps;

/// <summary>A launched app as the API shows it (its parts' state is read from their pods). Inline: visible right after the command.</summary>
public sealed class AppInstanceView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public string Namespace { get; set; } = "";
    public int Version { get; set; }

    /// <summary>Deleted, with volumes that still have to go (the watcher looks for these).</summary>
    public bool Releasing { get; set; }

    public AppInstance App { get; set; } = AppInstance.Initial;
}

public sealed class AppInstanceViewProjection : SingleStreamProjection<AppInstanceView, Guid>
{
    public override AppInstanceView? Evolve(AppInstanceView? snapshot, Guid id, IEvent e)
    {
        var app = Snapshots.Evolve(snapshot?.App, e);
        return app.Exists ? new AppInstanceView
        {
            Id = app.Id, TenantId = app.TenantId, Namespace = app.Namespace, Version = (int)e.Version, App = app,
            Releasing = app is { Phase: AppPhase.Deleting, Released: false } && app.Volumes.Count > 0
        } : snapshot;
    }
}
