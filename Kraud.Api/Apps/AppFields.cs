using System.Security.Cryptography;
using System.Text.Json;
using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Apps;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Apps;
using Kraud.Projections.Ingresses;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;

namespace Kraud.Api.Apps;

public sealed record AppConfigFieldDto(string Name, string Kind, string Label, string? Description, bool Required, string? Default, IReadOnlyList<string> Options,
    int? Min, int? Max, bool Generated);
public sealed record AppServiceDto(string Name, string Image, int Cpu, int MemoryMiB, int Replicas);
public sealed record AppTemplateVersionDto(string Version, string Changelog, IReadOnlyList<AppConfigFieldDto> Config, IReadOnlyList<AppServiceDto> Services,
    IReadOnlyList<VolumeTemplate> Volumes, IReadOnlyList<IngressTemplate> Ingress, bool Launchable, string? UnavailableReason);
public sealed record AppDto(string Name, string DisplayName, string Description, IReadOnlyList<AppTemplateVersionDto> Versions);
public sealed record AppPartDto(string Kind, string Name, int Rollout, string State, PodDto? Pod, VolumeDto? Volume = null, IngressDto? Ingress = null);
public sealed record AppInstanceDto(Guid Id, string Name, string Namespace, Guid TenantId, string App, string Version, string State, string? Reason,
    IReadOnlyDictionary<string, string> Config, IReadOnlyList<string> SecretFields, IReadOnlyList<AppPartDto> Parts, IReadOnlyList<ChangelogEntry> Changelog,
    int Revision, DateTime CreatedAt);
public sealed record AppSecretDto(string Name, string Value);
public sealed record AppLaunchDto(AppInstanceDto App, IReadOnlyList<AppSecretDto> GeneratedSecrets, IReadOnlyList<ChangelogEntry> Changelog);

/// <summary>Managed Apps: apps (the catalog), appInstances, appInstance, launchApp, upgradeApp, deleteApp.</summary>
public static class AppFields
{
    /// <summary>What Kraud can create for an app: pods, volumes (createVolume) and a managed ingress (createIngress), each a rollout step.</summary>
    public static readonly AppCapabilities Capabilities = AppCapabilities.All;

    public static void Map(Fields fields)
    {
        fields.Query("apps", ctx => Task.FromResult(ctx.Service<AppCatalog>().All.Select(versions => new AppDto(versions[^1].Name, versions[^1].DisplayName,
            versions[^1].Description, versions.Select(Version).ToList())).ToList()));

        fields.Mutation("launchApp", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            var template = ctx.Service<AppCatalog>().Find(ctx.GetArgument<string>("app"), ctx.GetArgument<string>("version"));
            var zones = await ZoneNames.AllAsync(ctx.Service<IQuerySession>(), ctx.CancellationToken);
            var config = AppConfig.Resolve(template, Given(ctx), zones, Generate);
            var command = new LaunchApp(ctx.NewId(), principal.RequireTenant(), ctx.GetArgument<string?>("name") ?? template.Name,
                ctx.GetArgument<string?>("namespace") ?? "default", template, config, Capabilities, principal, ctx.Now());
            await ctx.Invoke(new AppRequest(command, principal, Secrets: config.Secrets));
            return new AppLaunchDto(await LoadAsync(ctx, command.AppId), Shown(config), [new ChangelogEntry(template.Version, template.Changelog.Trim())]);
        });
        fields.Mutation("upgradeApp", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            var id = Ids.Parse(ctx.GetArgument<string>("id"), "App");
            var view = await ctx.Service<IQuerySession>().LoadAsync<AppInstanceView>(id, ctx.CancellationToken);
            if (view is null || (principal.TenantId is { } tenant && view.TenantId != tenant)) throw DomainException.NotFound("App", id);
            var catalog = ctx.Service<AppCatalog>();
            var app = view.App;
            var target = catalog.Find(app.App, ctx.GetArgument<string>("version"));
            var zones = await ZoneNames.AllAsync(ctx.Service<IQuerySession>(), ctx.CancellationToken);
            var config = AppConfig.Resolve(target, Given(ctx), zones, Generate, app.Config, app.SecretFields.ToHashSet());
            var changelog = AppVersion.Parse(target.Version) > AppVersion.Parse(app.Version) ? catalog.ChangelogBetween(app.App, app.Version, target.Version) : [];
            await ctx.Invoke(new AppRequest(new UpgradeApp(id, target, changelog, config, Capabilities, principal, ctx.Now()), principal,
                ctx.GetArgument<int?>("expectedRevision"), config.Secrets));
            return new AppLaunchDto(await LoadAsync(ctx, id), Shown(config), changelog);
        });
        fields.Mutation("deleteApp", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("id"), "App");
            await ctx.Invoke(new AppRequest(new DeleteApp(id, ctx.Caller().Principal, ctx.Now()), ctx.Caller().Principal));
            return await LoadAsync(ctx, id);
        });

        fields.Query("appInstances", async ctx =>
        {
            var principal = ctx.ResourceReader();
            var query = ctx.Service<IQuerySession>().Query<AppInstanceView>().AsQueryable();
            if (principal.TenantId is { } tenant) query = query.Where(a => a.TenantId == tenant);
            if (ctx.GetArgument<string?>("namespace") is { } ns) query = query.Where(a => a.Namespace == ns);
            var views = await query.ToListAsync(ctx.CancellationToken);
            var parts = await PartViews.LoadAsync(ctx, views.Select(v => v.App));
            return views.OrderBy(v => v.App.CreatedAt).ThenBy(v => v.Id).Select(v => Dto(v, parts)).ToList();
        });
        fields.Query("appInstance", async ctx =>
        {
            var principal = ctx.ResourceReader();
            if (!Guid.TryParse(ctx.GetArgument<string>("id"), out var id)) return null;
            var view = await ctx.Service<IQuerySession>().LoadAsync<AppInstanceView>(id, ctx.CancellationToken);
            if (view is null || (principal.TenantId is { } tenant && view.TenantId != tenant)) return null;
            return Dto(view, await PartViews.LoadAsync(ctx, [view.App]));
        });
    }

    /// <summary>Secrets Kraud generated are shown here, once; values the user gave are not echoed back.</summary>
    private static List<AppSecretDto> Shown(ResolvedConfig config) => config.Generated.Select(name => new AppSecretDto(name, config.Secrets[name])).ToList();

    private static string Generate(int length) => RandomNumberGenerator.GetString("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", length);

    /// <summary>The config argument: a JSON object whose values are strings, numbers or booleans (null leaves a field to its default).</summary>
    private static Dictionary<string, string?> Given(IResolveFieldContext ctx)
    {
        var raw = ctx.GetArgument<object?>("config");
        if (raw is null) return [];
        var element = raw as JsonElement? ?? JsonSerializer.SerializeToElement(raw);
        if (element.ValueKind == JsonValueKind.Null) return [];
        if (element.ValueKind != JsonValueKind.Object) throw DomainException.Validation("config must be a JSON object of field names and values.");
        return element.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind switch
        {
            JsonValueKind.String => p.Value.GetString(),
            JsonValueKind.Number => p.Value.GetRawText(),
            JsonValueKind.True => "true",
            JsonValueKind.False => "false",
            JsonValueKind.Null => null,
            _ => throw DomainException.Validation($"config.{p.Name} must be a string, a number or a boolean."),
        });
    }

    private static AppTemplateVersionDto Version(AppTemplate t) => new(t.Version, t.Changelog.Trim(),
        t.Config.Select(f => new AppConfigFieldDto(f.Name, Kind(f.Kind), f.Label, f.Description, f.Required, f.Kind == ConfigKind.Secret ? null : f.Default,
            f.Options, f.Min, f.Max, f.Kind == ConfigKind.Secret && f.Length is not null)).ToList(),
        t.Services.Select(s => new AppServiceDto(s.Name, s.Image, s.Cpu, s.MemoryMiB, s.Replicas)).ToList(), t.Volumes, t.Ingresses,
        AppDecider.Unavailable(t, Capabilities) is null, AppDecider.Unavailable(t, Capabilities));

    private static string Kind(ConfigKind kind) => kind switch
    {
        ConfigKind.VolumeSize => "VOLUME_SIZE",
        ConfigKind.IngressHost => "INGRESS_HOST",
        _ => Enums.Name(kind),
    };

    private static async Task<AppInstanceDto> LoadAsync(IResolveFieldContext ctx, Guid id)
    {
        var view = await ctx.Service<IQuerySession>().LoadAsync<AppInstanceView>(id, ctx.CancellationToken) ?? throw DomainException.NotFound("App", id);
        return Dto(view, await PartViews.LoadAsync(ctx, [view.App]));
    }

    /// <summary>The read models of the parts of some apps, loaded in three queries.</summary>
    private sealed record PartViews(IReadOnlyDictionary<Guid, PodView> Pods, IReadOnlyDictionary<Guid, VolumeView> Volumes,
        IReadOnlyDictionary<Guid, IngressView> Ingresses)
    {
        public static async Task<PartViews> LoadAsync(IResolveFieldContext ctx, IEnumerable<AppInstance> apps)
        {
            var rollouts = apps.SelectMany(a => new[] { a.Rollout, a.FailedRollout }.OfType<AppRollout>().Select(r => (a, r))).ToList();
            var all = apps.ToList();
            var session = ctx.Service<IQuerySession>();
            var pods = await ctx.PodViewsAsync(all.SelectMany(a => a.Parts).Concat(rollouts.SelectMany(x => x.r.Pods)).Select(p => p.PodId));
            var volumeIds = all.SelectMany(a => a.Volumes).Concat(rollouts.SelectMany(x => x.r.VolumeParts)).Select(v => v.VolumeId).Distinct().ToArray();
            var ingressIds = all.Select(a => a.Ingress).Concat(rollouts.Select(x => x.r.Ingress)).OfType<AppIngress>().Select(i => i.IngressId).Distinct().ToArray();
            var volumes = volumeIds.Length == 0 ? [] : (await session.LoadManyAsync<VolumeView>(ctx.CancellationToken, volumeIds)).ToDictionary(v => v.Id);
            var ingresses = ingressIds.Length == 0 ? [] : (await session.LoadManyAsync<IngressView>(ctx.CancellationToken, ingressIds)).ToDictionary(i => i.Id);
            return new PartViews(pods, volumes, ingresses);
        }

        public IEnumerable<AppPartDto> Of(int rollout, IEnumerable<AppPodPart> pods, IEnumerable<AppVolumePart> volumes, AppIngress? ingress)
        {
            foreach (var p in pods)
                yield return Pods.TryGetValue(p.PodId, out var pod)
                    ? new AppPartDto("POD", p.Service, rollout, Enums.Name(pod.State), PodDto.From(pod))
                    : new AppPartDto("POD", p.Service, rollout, "NOT_CREATED", null);
            foreach (var v in volumes)
                yield return Volumes.TryGetValue(v.VolumeId, out var volume)
                    ? new AppPartDto("VOLUME", v.Name, rollout, Enums.Name(volume.Volume.State), null, VolumeDto.From(volume))
                    : new AppPartDto("VOLUME", v.Name, rollout, "NOT_CREATED", null);
            if (ingress is null) yield break;
            yield return Ingresses.TryGetValue(ingress.IngressId, out var view)
                ? new AppPartDto("INGRESS", ingress.Name, rollout, view.Deleted ? "DELETED" : "ACTIVE", null, null, IngressDto.From(view.Ingress))
                : new AppPartDto("INGRESS", ingress.Name, rollout, "NOT_CREATED", null);
        }

        public (string State, string? Reason) Health(AppInstance app) => AppHealth.Of(app.Parts, app.Volumes, app.Ingress,
            app.Parts.Where(p => Pods.ContainsKey(p.PodId)).ToDictionary(p => p.PodId, p => Pods[p.PodId].Pod),
            app.Volumes.Where(v => Volumes.ContainsKey(v.VolumeId)).ToDictionary(v => v.VolumeId, v => Volumes[v.VolumeId].Volume),
            app.Ingress is { } i && Ingresses.TryGetValue(i.IngressId, out var view) ? view.Ingress : null);
    }

    private static AppInstanceDto Dto(AppInstanceView view, PartViews views)
    {
        var app = view.App;
        // The current parts; what a rollout in progress (or the last failed one) creates beside them: kept volumes and a kept ingress are listed once.
        IEnumerable<AppPartDto> Of(AppRollout? r) => r is null ? []
            : views.Of(r.Number, r.Pods, r.VolumeParts.Where(v => !v.Existing), r.Ingress is { Existing: false } i ? i : null);
        var parts = views.Of(app.CurrentRollout, app.Parts, app.Volumes, app.Ingress).Concat(Of(app.Rollout)).Concat(Of(app.FailedRollout)).ToList();
        var (state, reason) = app.Phase switch
        {
            AppPhase.Launching or AppPhase.Upgrading when app.RollingBack => ("ROLLING_BACK", app.Reason),
            AppPhase.Launching => ("LAUNCHING", null),
            AppPhase.Upgrading => ("UPGRADING", app.Rollout?.DowntimeNote),
            AppPhase.Failed => ("FAILED", app.Reason),
            AppPhase.Deleting => PartsHealth.Of(app.Parts.Select(p => new PartsHealth.Part($"service {p.Service}", views.Pods.GetValueOrDefault(p.PodId)?.Pod))
                .ToList(), true) is ("DELETED", _) && app.Rollout is null && (app.Released || app.Volumes.IsEmpty) ? ("DELETED", null) : ("DELETING", null),
            _ => views.Health(app) switch
            {
                ("RUNNING", null) => ("RUNNING", app.Reason),
                ("RUNNING", var note) => ("DEGRADED", note),
                var other => other,
            },
        };
        return new AppInstanceDto(app.Id, app.Name, app.Namespace, app.TenantId, app.App, app.Version, state, reason, app.Config, app.SecretFields,
            parts, app.History, view.Version, app.CreatedAt.UtcDateTime);
    }
}
