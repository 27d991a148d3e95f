using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Projections.Access;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Access;

/// <summary>
/// First start without KRAUD_BOOTSTRAP_TOKEN and without any operator token: issue one, print it once and write it to
/// .kraud/operator-token (mode 0600), so a fresh install can be administered at all.
/// </summary>
public sealed class OperatorBootstrap(IDocumentStore store, IWolverineRuntime runtime, IConfiguration configuration, TimeProvider time,
    ILogger<OperatorBootstrap> logger) : IHostedService
{
    public const string TokenFile = "operator-token";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!string.IsNullOrEmpty(configuration[TokenAuthenticator.BootstrapVariable])) return;
        var path = Path.Combine(KraudDatabase.StateDirectory(configuration), TokenFile);
        var secret = await EnsureOperatorTokenAsync(path, cancellationToken);
        if (secret is not null)
            logger.LogWarning("No operator token existed: issued one, shown only this once and saved to {Path}:\n\n    {Token}\n", path, secret);
    }

    /// <summary>Issues an operator token when none is active; returns its secret, or null when one exists already.</summary>
    public async Task<string?> EnsureOperatorTokenAsync(string path, CancellationToken ct)
    {
        await using (var session = store.QuerySession())
            if (await session.Query<ApiTokenView>().AnyAsync(t => t.Role == Role.Operator && !t.Revoked, ct)) return null;

        var secret = TokenSecrets.New();
        await new MessageBus(runtime).InvokeAsync(new IssueApiToken(Guid.NewGuid(), null, Role.Operator, "bootstrap operator", TokenSecrets.Sha256(secret),
            Principal.System("bootstrap"), time.GetUtcNow()), ct);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, secret + "\n", ct);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return secret;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
