using JasperFx.Events;
using Kraud.Domain.Access;
using Kraud.Projections.Audit;
using Marten;
using Wolverine;

namespace Kraud.Api.Common;

/// <summary>Who caused some events, through which command, and the ids that link them to the request and message.</summary>
public sealed record AuditStamp(string Actor, string Role, Guid? Tenant, string Command, string CommandId, string? CorrelationId, string? CausationId,
    string? Client)
{
    public static AuditStamp For(IMessageContext context, Principal by, Guid? tenant, string command, string? correlationId = null, string? scope = null)
    {
        var envelope = context.Envelope;
        var envelopeId = envelope?.Id.ToString() ?? Guid.NewGuid().ToString();
        var client = envelope?.Headers.TryGetValue(SessionStamp.ClientHeader, out var c) == true ? c : null;
        return new AuditStamp(by.Actor, by.Role.ToString().ToUpperInvariant(), tenant, command, scope is null ? envelopeId : $"{envelopeId}/{scope}",
            correlationId ?? context.CorrelationId, envelope?.Id.ToString(), client);
    }
}

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
        var stamp = AuditStamp.For(context, by, tenant, command);
        session.CorrelationId = stamp.CorrelationId;
        session.CausationId = stamp.CausationId;
        foreach (var (name, value) in Headers(stamp)) session.SetHeader(name, value);
    }

    /// <summary>
    /// Stamps just these events: a handler that decides for several resources at once (the batching scheduler) gives
    /// each its own tenant, command and correlation id.
    /// </summary>
    public static void Stamp(this StreamAction stream, AuditStamp stamp) => stream.Events.Stamp(stamp);

    /// <summary>Stamps these events (those just appended to a stream fetched for writing).</summary>
    public static void Stamp(this IEnumerable<IEvent> events, AuditStamp stamp)
    {
        foreach (var e in events)
        {
            e.CorrelationId = stamp.CorrelationId;
            e.CausationId = stamp.CausationId;
            foreach (var (name, value) in Headers(stamp)) e.SetHeader(name, value);
        }
    }

    private static IEnumerable<(string, string)> Headers(AuditStamp stamp)
    {
        yield return (AuditHeaders.Actor, stamp.Actor);
        yield return (AuditHeaders.Role, stamp.Role);
        yield return (AuditHeaders.Command, stamp.Command);
        yield return (AuditHeaders.CommandId, stamp.CommandId);
        if (stamp.Tenant is { } t) yield return (AuditHeaders.Tenant, t.ToString());
        if (stamp.Client is not null) yield return (AuditHeaders.ClientAddress, stamp.Client);
    }
}
