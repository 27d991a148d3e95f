using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Domain.Apps;

/// <summary>
/// What a Kraud installation can create for an app: pods always; volumes and managed ingresses where the rollout's steps for
/// them are wired (they are in the API). Templates needing more are refused before anything is appended.
/// </summary>
public sealed record AppCapabilities(bool Volumes, bool Ingresses)
{
    public static AppCapabilities PodsOnly { get; } = new(false, false);

    public static AppCapabilities All { get; } = new(true, true);
}

public abstract record AppCommand(Guid AppId, DateTimeOffset At);

public sealed record LaunchApp(
    Guid AppId, Guid TenantId, string Name, string Namespace, AppTemplate Template, ResolvedConfig Config, AppCapabilities Capabilities, Principal By,
    DateTimeOffset At) : AppCommand(AppId, At);

/// <param name="Changelog">The catalog's entries of every version after the app's current one, up to and including the target.</param>
public sealed record UpgradeApp(Guid AppId, AppTemplate Target, IReadOnlyList<ChangelogEntry> Changelog, ResolvedConfig Config, AppCapabilities Capabilities,
    Principal By, DateTimeOffset At) : AppCommand(AppId, At);

public sealed record CompleteAppRollout(Guid AppId, int Rollout, DateTimeOffset At) : AppCommand(AppId, At);
public sealed record FailAppRollout(Guid AppId, int Rollout, string Reason, DateTimeOffset At, IReadOnlyList<AppPodPart>? Restored = null)
    : AppCommand(AppId, At);
public sealed record RollBackAppRollout(Guid AppId, int Rollout, string Reason, DateTimeOffset At) : AppCommand(AppId, At);
public sealed record DeleteApp(Guid AppId, Principal By, DateTimeOffset At) : AppCommand(AppId, At);
public sealed record ReleaseApp(Guid AppId, DateTimeOffset At) : AppCommand(AppId, At);

public static class AppDecider
{
    public const int MaxNameLength = 30;

    public static IReadOnlyList<object> Decide(AppCommand command, AppInstance state) => (command, state) switch
    {
        (LaunchApp c, { Exists: true }) => throw DomainException.Conflict($"App {c.AppId} exists already."),
        (LaunchApp c, _) => [Launch(c)],
        (_, { Exists: false }) => throw DomainException.NotFound("App", command.AppId),
        (CompleteAppRollout c, _) => state.Rollout?.Number == c.Rollout ? [new AppRolloutSucceeded(c.AppId, c.Rollout, c.At)] : [],
        (FailAppRollout c, _) => state.Rollout?.Number == c.Rollout ? [new AppRolloutFailed(c.AppId, c.Rollout, c.Reason, c.At, c.Restored)] : [],
        (RollBackAppRollout c, _) => state.Rollout?.Number == c.Rollout && !state.RollingBack ? [new AppRollbackStarted(c.AppId, c.Rollout, c.Reason, c.At)] : [],
        (ReleaseApp c, _) => state is { Phase: AppPhase.Deleting, Released: false } ? [new AppReleased(c.AppId, c.At)] : [],
        (_, { Phase: AppPhase.Deleting }) => throw new DomainException(ErrorCode.Precondition, $"App {state.Name} is being deleted."),
        (UpgradeApp c, _) => [Upgrade(c, state)],
        (DeleteApp c, _) => [new AppDeletionRequested(c.AppId, c.By.Actor, c.At)],
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.GetType().Name),
    };

    private static AppLaunchRequested Launch(LaunchApp c)
    {
        Names.RequireDnsLabel(c.Name, "name");
        if (c.Name.Length > MaxNameLength) throw DomainException.Validation($"name '{c.Name}' is longer than {MaxNameLength} characters.");
        Names.RequireDnsLabel(c.Namespace, "namespace");
        RequireCapabilities(c.Template, c.Capabilities);
        var rollout = AppPlan.Rollout(c.AppId, c.TenantId, 1, c.Name, c.Namespace, c.Template, c.Config,
            [new ChangelogEntry(c.Template.Version, c.Template.Changelog.Trim())]);
        return new AppLaunchRequested(c.AppId, c.TenantId, c.Name, c.Namespace, c.Template.Name, rollout, c.By.Actor, c.At);
    }

    private static AppUpgradeRequested Upgrade(UpgradeApp c, AppInstance state)
    {
        if (state.Rollout is { } running)
            throw new DomainException(ErrorCode.Precondition, $"App {state.Name} is rolling out {running.Version} already: wait until it is done.");
        if (state.Phase == AppPhase.Failed)
            throw new DomainException(ErrorCode.Precondition, $"App {state.Name} failed to launch ({state.Reason}): delete it and launch it again.");
        if (c.Target.Name != state.App) throw DomainException.Validation($"App {state.Name} is {state.App}, not {c.Target.Name}.");
        if (AppVersion.Parse(c.Target.Version) <= AppVersion.Parse(state.Version))
            throw DomainException.Validation($"version {c.Target.Version} is not newer than {state.Version}, the version app {state.Name} runs.");
        RequireCapabilities(c.Target, c.Capabilities);
        var rollout = AppPlan.Rollout(c.AppId, state.TenantId, state.LastRollout + 1, state.Name, state.Namespace, c.Target, c.Config, c.Changelog, state);
        return new AppUpgradeRequested(c.AppId, state.Version, rollout, c.By.Actor, c.At);
    }

    private static void RequireCapabilities(AppTemplate t, AppCapabilities caps)
    {
        if (Unavailable(t, caps) is { } reason) throw new DomainException(ErrorCode.Precondition, reason);
    }

    /// <summary>Why this Kraud version cannot launch the template, or null when it can.</summary>
    public static string? Unavailable(AppTemplate t, AppCapabilities caps)
    {
        var missing = new List<string>();
        if (t.Volumes.Count > 0 && !caps.Volumes)
            missing.Add($"volumes ({string.Join(", ", t.Volumes.Select(v => $"{v.Name}: {v.Class}"))})");
        if (t.Ingresses.Count > 0 && !caps.Ingresses)
            missing.Add($"an ingress ({string.Join(", ", t.Ingresses.Select(i => $"{i.Host}{i.Path} -> {i.Service}:{i.Port}"))})");
        return missing.Count == 0 ? null
            : $"{t.Name} {t.Version} needs {string.Join(" and ", missing)}, which this Kraud version cannot create yet: only apps made of pods launch.";
    }
}
