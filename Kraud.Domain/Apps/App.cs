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
public sealed record AppVolumePart(string Name, Guid VolumeId, string Class, int SizeGiB, IReadOnlyList<AppVolumeMount> Mounts);

/// <summary>An ingress route the template asks for, with the host from the config: what an ingress step creates.</summary>
public sealed record AppIngressPart(string Host, string Path, string Service, int Port);

/// <summary>
/// A launch or an upgrade in progress: the parts it creates, and the configuration and changelog that become the app's
/// once every part runs. Number 1 is the launch; each upgrade is the next number.
/// </summary>
public sealed record AppRollout(
    int Number, string Version, IReadOnlyList<AppPodPart> Pods, IReadOnlyDictionary<string, string> Config, IReadOnlyList<string> SecretFields,
    IReadOnlyList<ChangelogEntry> Changelog, IReadOnlyList<AppVolumePart>? Volumes = null, IReadOnlyList<AppIngressPart>? Ingresses = null)
{
    /// <summary>Parts only createVolume and createIngress can make: the rollout saga has no steps for them yet.</summary>
    public bool NeedsVolumesOrIngresses => Volumes is { Count: > 0 } || Ingresses is { Count: > 0 };

    public bool IsUpgrade => Number > 1;
}

public sealed record AppLaunchRequested(
    Guid AppId, Guid TenantId, string Name, string Namespace, string App, AppRollout Rollout, string RequestedBy, DateTimeOffset At);

public sealed record AppUpgradeRequested(Guid AppId, string FromVersion, AppRollout Rollout, string RequestedBy, DateTimeOffset At);

/// <summary>Every part of the rollout runs: the app is on the rollout's version (an upgrade's old parts are removed now).</summary>
public sealed record AppRolloutSucceeded(Guid AppId, int Rollout, DateTimeOffset At);

/// <summary>A part failed or did not come up in time: what the rollout created was removed.</summary>
public sealed record AppRolloutFailed(Guid AppId, int Rollout, string Reason, DateTimeOffset At);

public sealed record AppDeletionRequested(Guid AppId, string By, DateTimeOffset At);

public sealed record AppInstance(
    Guid Id, Guid TenantId, string Name, string Namespace, string App, string Version, ImmutableSortedDictionary<string, string> Config,
    ImmutableList<string> SecretFields, ImmutableList<AppPodPart> Parts, AppRollout? Rollout, AppPhase Phase, string? Reason,
    ImmutableList<ChangelogEntry> History, bool Exists, DateTimeOffset CreatedAt) : IState<AppInstance>
{
    public static AppInstance Initial { get; } = new(Guid.Empty, Guid.Empty, "", "", "", "", ImmutableSortedDictionary<string, string>.Empty, [], [], null,
        AppPhase.Launching, null, [], false, default);

    public PodOwner Owner => new(PodOwner.App, Id, Name);

    /// <summary>The number of the latest rollout started; numbers are never reused, since they name the rollout's pods.</summary>
    public int LastRollout { get; init; }

    /// <summary>The last rollout that failed, so that what it created (and removed) stays visible; cleared by the next rollout.</summary>
    public AppRollout? FailedRollout { get; init; }

    /// <summary>The rollout that made the app's current parts (0 before the launch completed).</summary>
    public int CurrentRollout { get; init; }

    public AppInstance Evolve(object @event) => @event switch
    {
        AppLaunchRequested e => new AppInstance(e.AppId, e.TenantId, e.Name, e.Namespace, e.App, e.Rollout.Version,
            e.Rollout.Config.ToImmutableSortedDictionary(StringComparer.Ordinal), [.. e.Rollout.SecretFields], [], e.Rollout, AppPhase.Launching, null, [], true, e.At) { LastRollout = e.Rollout.Number },
        AppUpgradeRequested e => this with { Rollout = e.Rollout, Phase = AppPhase.Upgrading, Reason = null, LastRollout = e.Rollout.Number, FailedRollout = null },
        AppRolloutSucceeded e when Rollout?.Number == e.Rollout => this with
        {
            Version = Rollout.Version, Parts = [.. Rollout.Pods], Config = Rollout.Config.ToImmutableSortedDictionary(StringComparer.Ordinal),
            SecretFields = [.. Rollout.SecretFields], History = History.AddRange(Rollout.Changelog), Rollout = null, CurrentRollout = Rollout.Number,
            Phase = Phase == AppPhase.Deleting ? Phase : AppPhase.Running, Reason = null,
        },
        AppRolloutFailed e when Rollout?.Number == e.Rollout => this with
        {
            Rollout = null,
            FailedRollout = Rollout,
            Phase = Phase == AppPhase.Deleting ? Phase : Rollout.IsUpgrade ? AppPhase.Running : AppPhase.Failed,
            Reason = Rollout.IsUpgrade ? $"upgrade to {Rollout.Version} failed: {e.Reason}" : e.Reason,
        },
        AppDeletionRequested => this with { Phase = AppPhase.Deleting },
        _ => this,
    };
}
