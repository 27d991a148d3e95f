namespace Kraud.Api.Common;

/// <summary>
/// A name held by one resource (tenant, pod within its namespace, host). Inserted in the same transaction as the
/// resource's first event, so two concurrent creates with one name cannot both commit: the loser gets CONFLICT.
/// </summary>
public sealed class NameClaim
{
    public string Id { get; set; } = "";
    public Guid OwnerId { get; set; }

    public static string For(string kind, params string[] scope) => $"{kind}:{string.Join('/', scope)}";
}
