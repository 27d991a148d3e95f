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

    /// <summary>The id of a resource this request creates (see <see cref="RequestIds"/>).</summary>
    public static Guid NewId(this IResolveFieldContext ctx) => ctx.Caller().Ids.Next();

    public static DateTimeOffset Now(this IResolveFieldContext ctx) => ctx.Service<TimeProvider>().GetUtcNow();

    public static InputArgs Input(this IResolveFieldContext ctx, string argument) =>
        new(ctx.GetArgument<Dictionary<string, object?>>(argument) ?? throw DomainException.Validation($"{argument} is required."));

    /// <summary>Sends a command through Wolverine and waits for its handler; the request's correlation id and client address go along.</summary>
    public static Task Invoke(this IResolveFieldContext ctx, object command) =>
        InvokeCommandAsync(ctx.RequestServices!, ctx.Caller(), command, (bus, options) => bus.InvokeAsync(command, options, ctx.CancellationToken));

    /// <summary>As <see cref="Invoke(IResolveFieldContext, object)"/>, answered with what the handler returns.</summary>
    public static async Task<T> Invoke<T>(this IResolveFieldContext ctx, object command)
    {
        T answer = default!;
        await InvokeCommandAsync(ctx.RequestServices!, ctx.Caller(), command,
            async (bus, options) => answer = await bus.InvokeAsync<T>(command, options, ctx.CancellationToken));
        return answer;
    }

    /// <inheritdoc cref="InvokeCommandAsync(IServiceProvider, Caller, object, Func{IMessageContext, DeliveryOptions, Task})"/>
    public static Task InvokeCommandAsync(IServiceProvider services, Caller caller, object command, CancellationToken ct) =>
        InvokeCommandAsync(services, caller, command, (bus, options) => bus.InvokeAsync(command, options, ct));

    /// <summary>
    /// The one way a caller's command reaches its handler (GraphQL fields, the Docker API): through Wolverine, with the
    /// caller's correlation id and address; a refusal with a contract code appends nothing and is audited in the
    /// rejected-commands chain.
    /// </summary>
    private static async Task InvokeCommandAsync(IServiceProvider services, Caller caller, object command, Func<IMessageContext, DeliveryOptions, Task> invoke)
    {
        var bus = services.GetRequiredService<IMessageContext>();
        bus.CorrelationId = caller.CorrelationId;
        var options = new DeliveryOptions();
        if (caller.ClientAddress is not null) options.Headers[SessionStamp.ClientHeader] = caller.ClientAddress;
        try
        {
            await invoke(bus, options);
        }
        catch (Exception e) when (ErrorCodes.Map(e) is { } refusal)
        {
            // Refused: nothing was appended, but the refusal itself is audited (in a chain of its own).
            var name = (command is ICommandRequest request ? request.Command : command).GetType().Name;
            await bus.PublishAsync(new CommandRejected(services.GetRequiredService<TimeProvider>().GetUtcNow(), caller.Principal.TenantId,
                caller.Principal.Actor, name, refusal.Code ?? "ERROR", refusal.Message, caller.CorrelationId));
            throw;
        }
    }
}
