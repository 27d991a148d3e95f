using Kraud.Domain.Access;
using Kraud.Projections.Audit;
using Marten;
using Wolverine;

namespace Kraud.Api.Common;

public static class SessionStamp
{
    /// <summary>The envelope header that carries the client's address from the HTTP request to the handler.</summary>
    public const string ClientHeader = "kraud-client";

    /// <summary>
    /// Every event appended in this session carries who asked, for which tenant, through which command, and the
    /// correlation/causation ids of the message being handled: the audit chain is built from exactly this.
    /// </summary>
    public static void Stamp(this IDocumentSession session, IMessageContext context, Principal by, Guid? tenant, string command)
    {
        var envelope = context.Envelope;
        session.CorrelationId = context.CorrelationId;
        session.CausationId = envelope?.Id.ToString();
        session.SetHeader(AuditHeaders.Actor, by.Actor);
        session.SetHeader(AuditHeaders.Command, command);
        session.SetHeader(AuditHeaders.CommandId, envelope?.Id.ToString() ?? Guid.NewGuid().ToString());
        if (tenant is { } t) session.SetHeader(AuditHeaders.Tenant, t.ToString());
        if (envelope?.Headers.TryGetValue(ClientHeader, out var client) == true && client is not null)
            session.SetHeader(AuditHeaders.ClientAddress, client);
    }
}
