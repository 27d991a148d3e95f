using Kraud.Api.Common;
using Marten;

namespace Kraud.Api.Idempotency;

/// <summary>Idempotency-Key on every mutation: a retry answers what the first attempt answered and appends nothing.</summary>
public sealed class IdempotencySlice : KraudSlice
{
    public override void ConfigureMarten(StoreOptions marten) =>
        // Two attempts that both find a key's lease expired must not both take it over.
        marten.Schema.For<IdempotencyRecord>().UseOptimisticConcurrency(true).Index(r => r.Scope);

    public override void AddServices(IServiceCollection services) => services.AddSingleton<IdempotentMutations>();

    public override void UsePipeline(WebApplication app) => app.Use((http, next) =>
        http.RequestServices.GetRequiredService<IdempotentMutations>().InvokeAsync(http, next));
}
