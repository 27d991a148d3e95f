using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.Images;

/// <summary>A tenant's login for a private registry. The password is in no event: events name the registry and the user.</summary>
public sealed record RegistryCredentialAdded(Guid CredentialId, Guid TenantId, string Registry, string Username, string By, DateTimeOffset At);

public sealed record RegistryCredentialRemoved(Guid CredentialId, string By, DateTimeOffset At);

public sealed record RegistryCredential(Guid Id, Guid TenantId, string Registry, string Username, bool Exists, bool Removed, DateTimeOffset CreatedAt)
    : IState<RegistryCredential>
{
    public static RegistryCredential Initial { get; } = new(Guid.Empty, Guid.Empty, "", "", false, false, default);

    public RegistryCredential Evolve(object @event) => @event switch
    {
        RegistryCredentialAdded e => new RegistryCredential(e.CredentialId, e.TenantId, e.Registry, e.Username, true, false, e.At),
        RegistryCredentialRemoved => this with { Removed = true },
        _ => this,
    };
}

public abstract record RegistryCredentialCommand(Guid CredentialId, DateTimeOffset At);

/// <param name="Registry">host[:port] as the tenant typed it; the event holds it normalized (Docker Hub's aliases are docker.io).</param>
public sealed record AddRegistryCredential(Guid CredentialId, Guid TenantId, string Registry, string Username, Principal By, DateTimeOffset At)
    : RegistryCredentialCommand(CredentialId, At);

public sealed record RemoveRegistryCredential(Guid CredentialId, Principal By, DateTimeOffset At) : RegistryCredentialCommand(CredentialId, At);

public static class RegistryCredentialDecider
{
    public const int MaxPasswordLength = 4096;

    /// <summary>The tenant's ADMIN manages its registry credentials; another tenant's credential does not exist for the caller.</summary>
    public static IReadOnlyList<object> Decide(RegistryCredentialCommand command, RegistryCredential state) => (command, state) switch
    {
        (AddRegistryCredential { By.Role: not Role.Admin }, _) or (RemoveRegistryCredential { By.Role: not Role.Admin }, _) =>
            throw DomainException.Forbidden("Only the tenant's ADMIN manages registry credentials."),
        (AddRegistryCredential, { Exists: true }) => throw DomainException.Conflict($"Registry credential {command.CredentialId} exists already."),
        (AddRegistryCredential c, _) when c.By.TenantId != c.TenantId => throw DomainException.Forbidden("A tenant token can only act on its own tenant."),
        (AddRegistryCredential c, _) => [new RegistryCredentialAdded(c.CredentialId, c.TenantId, RequireRegistry(c.Registry), RequireUsername(c.Username), c.By.Actor, c.At)],
        (RemoveRegistryCredential c, _) when !state.Exists || state.Removed || state.TenantId != c.By.TenantId =>
            throw DomainException.NotFound("Registry credential", command.CredentialId),
        (RemoveRegistryCredential c, _) => [new RegistryCredentialRemoved(c.CredentialId, c.By.Actor, c.At)],
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.GetType().Name),
    };

    /// <summary>host[:port], lowercase, Docker Hub's aliases folded into docker.io.</summary>
    public static string RequireRegistry(string registry)
    {
        var normalized = ImageReference.NormalizeRegistry(registry ?? "");
        if (normalized.Length is 0 or > 255 || !ImageReference.IsRegistryName(normalized))
            throw DomainException.Validation($"registry '{registry}' is not a registry host[:port] (e.g. registry.example.com or 10.0.0.5:5000).");
        return normalized;
    }

    public static string RequireUsername(string username)
    {
        if (string.IsNullOrWhiteSpace(username) || username.Length > 256 || username.Any(char.IsControl) || username.Contains(':'))
            throw DomainException.Validation("username must be 1-256 characters without ':' or control characters.");
        return username;
    }

    public static void RequirePassword(string password)
    {
        if (string.IsNullOrEmpty(password) || password.Length > MaxPasswordLength || password.Any(c => c is '\r' or '\n' or '\0'))
            throw DomainException.Validation($"password must be 1-{MaxPasswordLength} characters without line breaks.");
    }
}
