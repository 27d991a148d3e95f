using System.Text.RegularExpressions;
using Kraud.Api.Common;
using Kraud.Domain.Pods;
using Marten;

namespace Kraud.Api.Apps;

/// <summary>
/// The value of one of an app's secrets. A document, never an event: events are exported and replayed to anyone with audit
/// rights, and a secret is shown once, in the launchApp answer. Pods refer to it as ${secret:&lt;app id&gt;/&lt;field&gt;}.
/// </summary>
public sealed class AppSecretValue
{
    public string Id { get; set; } = "";
    public Guid TenantId { get; set; }
    public Guid AppId { get; set; }
    public string Value { get; set; } = "";

    public static string IdFor(Guid appId, string field) => $"{appId:D}/{field}";
}

public static partial class AppSecrets
{
    [GeneratedRegex(@"\$\{secret:(?<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[a-z0-9-]+)\}", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Reference();

    /// <summary>
    /// The pod's environment as its guest gets it: secret references replaced by their values, read when the boot command is
    /// sent so the value travels only to the host. A reference to another tenant's secret, or to none, stays as it is.
    /// </summary>
    public static async Task<IReadOnlyDictionary<string, string>> ResolveAsync(IQuerySession session, Pod pod)
    {
        var ids = References(pod);
        if (ids.Length == 0) return pod.Spec.Env;
        var secrets = (await ReadAhead.LoadManyAsync<AppSecretValue, string>(session, ids)).Where(s => s.TenantId == pod.TenantId).ToDictionary(s => s.Id, s => s.Value);
        return pod.Spec.Env.ToDictionary(e => e.Key, e => Reference().Replace(e.Value, m => secrets.GetValueOrDefault(m.Groups["id"].Value) ?? m.Value));
    }

    /// <summary>The ids of the app secrets the pod's environment refers to.</summary>
    public static string[] References(Pod pod) =>
        pod.Spec.Env.Values.SelectMany(v => Reference().Matches(v)).Select(m => m.Groups["id"].Value).Distinct().ToArray();
}

/// <summary>A booting microVM's environment, secret references resolved (see <see cref="IPodEnvironment"/>).</summary>
public sealed class AppSecretsEnvironment : IPodEnvironment
{
    public Task<IReadOnlyDictionary<string, string>> ResolveAsync(IQuerySession session, Pod pod) => AppSecrets.ResolveAsync(session, pod);

    public void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods) =>
        ahead.LoadMany<AppSecretValue, string>(pods.SelectMany(AppSecrets.References), s => s.Id);
}
