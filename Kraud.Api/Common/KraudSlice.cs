using Marten;
using Wolverine;

namespace Kraud.Api.Common;

/// <summary>
/// How a feature folder plugs itself in: its GraphQL fields, its services, its documents and its queues. Each folder has
/// one subclass, and start-up finds them by reflection, so neither the schema nor the configuration names a slice: a
/// new slice is one folder, and no file outside it changes.
/// </summary>
public abstract class KraudSlice
{
    /// <summary>Every slice of Kraud.Api, in a stable order (by name).</summary>
    public static IReadOnlyList<KraudSlice> All { get; } = typeof(KraudSlice).Assembly.GetTypes()
        .Where(t => t is { IsClass: true, IsAbstract: false } && t.IsSubclassOf(typeof(KraudSlice)))
        .OrderBy(t => t.FullName, StringComparer.Ordinal)
        .Select(t => (KraudSlice)Activator.CreateInstance(t)!)
        .ToList();

    /// <summary>Attaches the slice's resolvers to the schema-first types of the contract.</summary>
    public virtual void MapFields(Fields fields)
    {
    }

    public virtual void AddServices(IServiceCollection services)
    {
    }

    /// <summary>
    /// What the slice must do before the application's services are registered, asynchronously (e.g. start a child
    /// process whose address its configuration needs). Its services may be registered here too.
    /// </summary>
    public virtual Task PrepareAsync(WebApplicationBuilder builder) => Task.CompletedTask;

    /// <summary>The slice's own documents (read models are Kraud.Projections', registered with Marten's setup).</summary>
    public virtual void ConfigureMarten(StoreOptions marten)
    {
    }

    /// <summary>The slice's local queues and batching.</summary>
    public virtual void ConfigureWolverine(WolverineOptions wolverine)
    {
    }

    /// <summary>
    /// The slice's own middleware or endpoints outside GraphQL and FastEndpoints (e.g. static files), added after
    /// metrics and correlation and before FastEndpoints, in the slices' order.
    /// </summary>
    public virtual void UsePipeline(WebApplication app)
    {
    }
}
