using GraphQL;
using GraphQL.Resolvers;
using GraphQL.Utilities;

namespace Kraud.Api.Common;

/// <summary>Where each slice attaches its resolvers to the schema-first types of the contract (docs/contract.graphql).</summary>
public sealed class Fields(TypeSettings types)
{
    private readonly HashSet<(string Type, string Field)> _mapped = [];

    public IReadOnlySet<(string Type, string Field)> Mapped => _mapped;

    public void Query<T>(string field, Func<IResolveFieldContext, Task<T>> resolve) => On("Query", field, resolve);

    public void Mutation<T>(string field, Func<IResolveFieldContext, Task<T>> resolve) => On("Mutation", field, resolve);

    public void On<T>(string type, string field, Func<IResolveFieldContext, Task<T>> resolve)
    {
        if (!_mapped.Add((type, field))) throw new InvalidOperationException($"{type}.{field} is mapped twice.");
        types.For(type).FieldFor(field).Resolver = new FuncFieldResolver<object>(async ctx => await resolve(ctx));
    }
}
