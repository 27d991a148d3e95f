using System.Collections.Immutable;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Domain.Apps;

public enum AppPhase { Launching, Running, Failed, Upgrading, Deleting }

/// <summary>One service of the app as a pod: what the rollout creates, exactly (env refers to secrets, never holds them).</summary>
public sealed record AppPodPart(string Service, Guid PodId, PodSpec Spec, int Replicas);

public sealed record ChangelogEntry(string Version, string Notes);

public sealed record AppVolumeMount(string Service, string MountPath);

/// <summary>A volume the template asks for, with its size from the config and where the services mount it: what a volume step creates.</summary>
/// <param name="Existing">The app has this volume from an earlier rollout (an upgrade keeps its data): no step creates it, no rollback deletes it.</param>
public sealed record AppVolumePart(string Name, Guid VolumeId, string Class, int SizeGiB, IReadOnlyList<AppVolumeMount> Mounts, bool Existing = false);

/// <summary>An ingress route the template asks for, with the host from the config: what an ingress step creates.</summary>
public sealed record AppIngressPart(string Host, string Path, string Service, int Port);

/// <summary>
/// The app's one ingress, carrying every route of its template. It lives as long as the app: an upgrade points its routes at
/// the new pods, so domains the tenant verified on it keep serving.
/// </summary>
public sealed record AppIngress(Guid IngressId, string Name, bool Existing = false);

/// <summary>
/// A launch or an upgrade in progress: the parts it creates, and the configuration and changelog that become the app's
/// once every part runs. Number 1 is the launch; each upgrade is the next number.
/// </summary>
public sealed record AppRollout(
    int Number, string Version, IReadOnlyList<AppPodPart> Pods, IReadOnlyDictionary<string, string> Config, IReadOnlyList<string> SecretFields,
    IReadOnlyList<ChangelogEntry> Changelog, IReadOnlyList<AppVolumePart>? Volumes = null, IReadOnlyList<AppIngressPart>? Ingresses = null,
    AppIngress? Ingress = null, IReadOnlyList<string>? StopFirst = null)
{
    public bool IsUpgrade => Number > 1;

    public IReadOnlyList<AppVolumePart> VolumeParts => Volumes ?? [];

    public IReadOnlyList<AppIngressPart> Routes => Ingresses ?? [];

    /// <summary>
    /// Old services stopped before the new pods start: they mount a writable BLOCK volume the new version mounts too, and
    /// such a volume attaches to one pod at a time. The app is down from their stop until the new pods run.
    /// </summary>
    public IReadOnlyList<string> StoppedFirst => StopFirst ?? [];

    public string? DowntimeNote => StoppedFirst.Count == 0 ? null
        : $"downtime: {string.Join(", ", StoppedFirst)} stopped before {Version} starts (a BLOCK volume attaches to one pod at a time)";
}

public sealed record AppLaunchRequested(
    Guid AppId, Guid TenantId, string Name, string Namespace, string App, AppRollout Rollout, string RequestedBy, DateTimeOffset At);

public sealed record AppUpgradeRequested(Guid AppId, string FromVersion, AppRollout Rollout, string RequestedBy, DateTimeOffset At);

/// <summary>Every part of the rollout runs: the app is on the rollout's version (an upgrade's old parts are removed now).</summary>
public sealed record AppRolloutSucceeded(Guid AppId, int Rollout, DateTimeOffset At);

/// <summary>A part failed or did not come up in time: what the rollout created was removed.</summary>
/// <param name="Restored">Old pods an upgrade had stopped first, booted again (new pods of the old spec, on the same volumes).</param>
public sealed record AppRolloutFailed(Guid AppId, int Rollout, string Reason, DateTimeOffset At, IReadOnlyList<AppPodPart>? Restored = null);

/// <summary>A part failed: the rollout removes what it created (and restarts what it stopped) before it is failed.</summary>
public sealed record AppRollbackStarted(Guid AppId, int Rollout, string Reason, DateTimeOffset At);

public sealed record AppDeletionRequested(Guid AppId, string By, DateTimeOffset At);

/// <summary>Every pod of the deleted app stopped and its volumes are being crypto-erased: nothing of the app is left running.</summary>
public sealed record AppReleased(Guid AppId, DateTimeOffset At);

public sealed record AppInstance(
    Guid Id, Guid TenantId, string Name, string Namespace, string App, string Version, ImmutableSortedDictionary<string, string> Config,
    ImmutableList<string> SecretFields, ImmutableList<AppPodPart> Parts, AppRollout? Rollout, AppPhase Phase, string? Reason,
    ImmutableList<ChangelogEntry> History, bool Exists, DateTimeOffset CreatedAt) : IState<AppInstance>
{
    public static AppInstance Initial { get; } = new(Guid.Empty, Guid.Empty, "", "", "", "", ImmutableSortedDictionary<string, string>.Empty, [], [], null,
        AppPhase.Launching, null, [], false, default);

    public ResourceOwner Owner => new(ResourceOwner.App, Id, Name);

    /// <summary>The number of the latest rollout started; numbers are never reused, since they name the rollout's pods.</summary>
    public int LastRollout { get; init; }

    /// <summary>The last rollout that failed, so that what it created (and removed) stays visible; cleared by the next rollout.</summary>
    public AppRollout? FailedRollout { get; init; }

    /// <summary>The rollout that made the app's current parts (0 before the launch completed).</summary>
    public int CurrentRollout { get; init; }

    /// <summary>The app's volumes: kept from rollout to rollout, deleted only with the app.</summary>
    public ImmutableList<AppVolumePart> Volumes { get; init; } = [];

    public AppIngress? Ingress { get; init; }

    public ImmutableList<AppIngressPart> Routes { get; init; } = [];

    /// <summary>The rollout in progress failed and is removing what it created.</summary>
    public bool RollingBack { get; init; }

    /// <summary>A deleted app's volumes are deleted too (that waits until no pod mounts them).</summary>
    public bool Released { get; init; }

    public AppInstance Evolve(object @event) => @event switch
    {
        AppLaunchRequested e => new AppInstance(e.AppId, e.TenantId, e.Name, e.Namespace, e.App, e.Rollout.Version,
            e.Rollout.Config.ToImmutableSortedDictionary(StringComparer.Ordinal), [.. e.Rollout.SecretFields], [], e.Rollout, AppPhase.Launching, null, [], true, e.At)
        { LastRollout = e.Rollout.Number },
        AppUpgradeRequested e => this with { Rollout = e.Rollout, Phase = AppPhase.Upgrading, Reason = null, LastRollout = e.Rollout.Number, FailedRollout = null },
        AppRolloutSucceeded e when Rollout?.Number == e.Rollout => this with
        {
            Version = Rollout.Version,
            Parts = [.. Rollout.Pods],
            Config = Rollout.Config.ToImmutableSortedDictionary(StringComparer.Ordinal),
            SecretFields = [.. Rollout.SecretFields],
            History = History.AddRange(Rollout.Changelog),
            Rollout = null,
            CurrentRollout = Rollout.Number,
            Phase = Phase == AppPhase.Deleting ? Phase : AppPhase.Running,
            Reason = null,
            Volumes = [.. Rollout.VolumeParts],
            Ingress = Rollout.Ingress,
            Routes = [.. Rollout.Routes],
        },
        AppRollbackStarted e when Rollout?.Number == e.Rollout => this with { RollingBack = true, Reason = e.Reason },
        AppRolloutFailed e when Rollout?.Number == e.Rollout => this with
        {
            Parts = [.. Parts.Select(p => e.Restored?.FirstOrDefault(r => r.Service == p.Service) ?? p)],
            RollingBack = false,
            Rollout = null,
            FailedRollout = Rollout,
            Phase = Phase == AppPhase.Deleting ? Phase : Rollout.IsUpgrade ? AppPhase.Running : AppPhase.Failed,
            Reason = Rollout.IsUpgrade ? $"upgrade to {Rollout.Version} failed: {e.Reason}" : e.Reason,
        },
        AppDeletionRequested => this with { Phase = AppPhase.Deleting },
        AppReleased => this with { Released = true },
        _ => this,
    };
}
