using GraphQL;
using GraphQL.Types;
using GraphQLParser.AST;
using Kraud.Api.Common;

namespace Kraud.Api.Gql;

/// <summary>
/// The served schema is docs/contract.graphql itself (the public contract with Kraud's additions, marked as such), embedded
/// in the assembly, so the names clients see cannot drift from the contract; each slice attaches its resolvers to it.
/// </summary>
public static class KraudSchema
{
    public static string Sdl { get; } = ReadSdl();

    public static ISchema Build(IServiceProvider services)
    {
        var schema = Schema.For(Sdl, builder =>
        {
            builder.ServiceProvider = services;
            var fields = new Fields(builder.Types);
            foreach (var slice in KraudSlice.All) slice.MapFields(fields);
            if (Unresolved(fields.Mapped) is { Count: > 0 } missing)
                throw new InvalidOperationException($"contract.graphql has fields no slice resolves: {string.Join(", ", missing)}.");
        });
        schema.RegisterType(new JsonGraphType());
        return schema;
    }

    /// <summary>
    /// Query and Mutation fields of the served schema (contract and additions, extensions included) without a resolver.
    /// Every field must have one: a schema with an unresolved field would answer null where the contract promises data,
    /// so Kraud refuses to start with one.
    /// </summary>
    public static IReadOnlyList<string> Unresolved(IReadOnlySet<(string Type, string Field)> mapped) =>
        GraphQLParser.Parser.Parse(Sdl).Definitions
            .SelectMany(d => d switch
            {
                GraphQLObjectTypeDefinition t => [((string)t.Name.Value, t.Fields?.Items ?? [])],
                GraphQLObjectTypeExtension x => [((string)x.Name.Value, x.Fields?.Items ?? [])],
                _ => Array.Empty<(string, List<GraphQLFieldDefinition>)>(),
            })
            .Where(t => t.Item1 is "Query" or "Mutation")
            .SelectMany(t => t.Item2.Select(f => (Type: t.Item1, Field: (string)f.Name.Value)))
            .Where(f => !mapped.Contains(f))
            .Select(f => $"{f.Type}.{f.Field}")
            .ToList();

    private static string ReadSdl()
    {
        using var stream = typeof(KraudSchema).Assembly.GetManifestResourceStream("Kraud.contract.graphql")
            ?? throw new InvalidOperationException("docs/contract.graphql is not embedded in Kraud.Api.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
