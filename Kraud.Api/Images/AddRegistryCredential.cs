using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Kraud.Domain.Images;
using Kraud.HostRuntime.Images;
using Kraud.Projections.Images;
using Marten;
using Wolverine;

namespace Kraud.Api.Images;

public sealed record RegistryCredentialDto(Guid Id, string Registry, string Username, DateTime CreatedAt)
{
    public static RegistryCredentialDto From(RegistryCredentialView v) => new(v.Id, v.Registry, v.Username, v.CreatedAt.UtcDateTime);
}

/// <summary>
/// addRegistryCredential as the handler receives it: the password already sealed under the control plane's key, so not
/// even this in-process message holds it in clear.
/// </summary>
public sealed record RegistryCredentialRequest(AddRegistryCredential Command, string SealedPassword) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}

public static class AddRegistryCredentialField
{
    public static void Map(Fields fields) => fields.Mutation("addRegistryCredential", async ctx =>
    {
        var caller = ctx.Caller().Principal;
        var input = ctx.Input("input");
        var password = input.Required<string>("password");
        RegistryCredentialDecider.RequirePassword(password);
        var command = new AddRegistryCredential(ctx.NewId(), caller.RequireTenant(), input.Required<string>("registry"), input.Required<string>("username"),
            caller, ctx.Now());
        var key = ctx.Service<RegistryCredentials>().Key;
        await ctx.Invoke(new RegistryCredentialRequest(command, key.Seal(password, SealingContext(command))));
        var view = await ctx.Service<IQuerySession>().LoadAsync<RegistryCredentialView>(command.CredentialId, ctx.CancellationToken)
                   ?? throw DomainException.NotFound("Registry credential", command.CredentialId);
        return RegistryCredentialDto.From(view);
    });

    /// <summary>What the password is sealed to on its way to the handler (the credential's id and its tenant).</summary>
    internal static string SealingContext(AddRegistryCredential c) => $"registry-credential-request/{c.CredentialId}/{c.TenantId}";
}

/// <summary>
/// Decides first (who may, is the input well formed), then asks the registry whether it takes these credentials, as
/// `docker login` does: a wrong password is refused here, with nothing appended. One credential per registry and tenant
/// (a second is CONFLICT: remove the first).
/// </summary>
public static class RegistryCredentialRequestHandler
{
    public static async Task Handle(RegistryCredentialRequest request, IDocumentSession session, IMessageContext context, RegistryCredentials credentials,
        DistributionClient registry, CancellationToken ct)
    {
        var command = request.Command;
        var events = RegistryCredentialDecider.Decide(command, RegistryCredential.Initial);
        var added = (RegistryCredentialAdded)events[0];
        var password = credentials.Key.Open(request.SealedPassword, AddRegistryCredentialField.SealingContext(command));
        try
        {
            await registry.CheckCredentialsAsync(added.Registry, new RegistryAuth(added.Username, password), ct);
        }
        catch (RegistryException e)
        {
            throw e.Failure switch
            {
                RegistryFailure.Unreachable => new DomainException(ErrorCode.Precondition, $"registry {added.Registry} cannot be reached: {e.Message}"),
                RegistryFailure.Unauthorized => DomainException.Validation($"registry {added.Registry} refused the credentials of user '{added.Username}': {e.Message}"),
                _ => DomainException.Validation($"{added.Registry} does not answer as a registry (Distribution API v2): {e.Message}"),
            };
        }
        session.Stamp(context, command.By, command.TenantId, "AddRegistryCredential");
        session.Events.StartStream<RegistryCredential>(command.CredentialId, events);
        session.Insert(new NameClaim { Id = NameClaim.For("registry-credential", command.TenantId.ToString(), added.Registry), OwnerId = command.CredentialId });
        session.Insert(new RegistryCredentialSecret
        {
            Id = command.CredentialId, TenantId = command.TenantId, Registry = added.Registry, Username = added.Username, KeyId = credentials.Key.Id,
            SealedPassword = credentials.Key.Seal(password, RegistryCredentialSecret.Context(command.CredentialId, command.TenantId, added.Registry)),
        });
    }
}
