using GraphQL;
using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Gql;

/// <summary>The user context of one GraphQL request (GraphQL.NET wants a dictionary).</summary>
public sealed class KraudUserContext(Caller caller) : Dictionary<string, object?>
{
    public Caller Caller { get; } = caller;
}

public static class ResolveContext
{
    public static Caller Caller(this IResolveFieldContext ctx) => ((KraudUserContext)ctx.UserContext).Caller;

    public static T Service<T>(this IResolveFieldContext ctx) where T : notnull =>
        ctx.RequestServices!.GetRequiredService<T>();

    /// <summary>The caller of a query over tenant resources: auditors read audit data only.</summary>
    public static Kraud.Domain.Access.Principal ResourceReader(this IResolveFieldContext ctx)
    {
        var principal = ctx.Caller().Principal;
        if (principal.Role == Kraud.Domain.Access.Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens read audit data only.");
        return principal;
    }

    /// <summary>The pods with these ids, by id: what products (clusters, apps) read their parts' state from.</summary>
    public static async Task<Dictionary<Guid, PodView>> PodViewsAsync(this IResolveFieldContext ctx, IEnumerable<Guid> ids)
    {
        var all = ids.Distinct().ToArray();
        return all.Length == 0 ? [] : (await ctx.Service<IQuerySession>().LoadManyAsync<PodView>(ctx.CancellationToken, all)).ToDictionary(p => p.Id);
    }

    /// <summary>GraphQL DateTime arguments arrive without a kind; the contract says they are UTC.</summary>
    public static DateTimeOffset? Utc(this IResolveFieldContext ctx, string argument) =>
        ctx.GetArgument<DateTime?>(argument) is { } value ? new DateTimeOffset(DateTime.SpecifyKind(value, DateTimeKind.Utc)) : null;

    public static DateTimeOffset Now(this IResolveFieldContext ctx) => ctx.Service<TimeProvider>().GetUtcNow();

    public static InputArgs Input(this IResolveFieldContext ctx, string argument) =>
        new(ctx.GetArgument<Dictionary<string, object?>>(argument) ?? throw DomainException.Validation($"{argument} is required."));

    /// <summary>Sends a command through Wolverine and waits for its handler; the request's correlation id and client address go along.</summary>
    public static async Task Invoke(this IResolveFieldContext ctx, object command)
    {
        var caller = ctx.Caller();
        var bus = ctx.Service<IMessageContext>();
        bus.CorrelationId = caller.CorrelationId;
        var options = new DeliveryOptions();
        if (caller.ClientAddress is not null) options.Headers[SessionStamp.ClientHeader] = caller.ClientAddress;
        try
        {
            await bus.InvokeAsync(command, options, ctx.CancellationToken);
        }
        catch (Exception e) when (ErrorCodes.Map(e) is { } refusal)
        {
            // Refused: nothing was appended, but the refusal itself is audited (in a chain of its own).
            var name = (command is ICommandRequest request ? request.Command : command).GetType().Name;
            await bus.PublishAsync(new CommandRejected(ctx.Now(), caller.Principal.TenantId, caller.Principal.Actor, name, refusal.Code ?? "ERROR",
                refusal.Message, caller.CorrelationId));
            throw;
        }
    }
}
