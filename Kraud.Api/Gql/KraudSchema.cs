using GraphQL;
using GraphQL.Types;
using GraphQLParser.AST;
using Kraud.Api.Access;
using Kraud.Api.Audit;
using Kraud.Api.Fleet;
using Kraud.Api.Operations;
using Kraud.Api.Pods;
using Kraud.Api.Products;
using Kraud.Api.Replay;
using Kraud.Api.Tenants;

namespace Kraud.Api.Gql;

/// <summary>
/// The served schema is schema.graphql itself (the public contract plus Kraud's additions), so the names clients see
/// cannot drift from the contract; each slice attaches its resolvers to it.
/// </summary>
public static class KraudSchema
{
    public static string Sdl { get; } = ReadSdl();

    private static readonly Action<Fields>[] Slices =
    [
        MeQuery.Map, ProductsQuery.Map,
        TenantQueries.Map, CreateTenantField.Map,
        CreateApiTokenField.Map, RevokeApiTokenField.Map,
        PodQueries.Map, PodMutations.Map,
        Volumes.VolumeFields.Map,
        HostQueries.Map, RegisterHostField.Map, CordonHostFields.Map,
        AuditQueries.Map, AuditDigestFields.Map, RejectedCommandFields.Map,
        TimelineQuery.Map, PlatformAtQuery.Map, IncidentQuery.Map,
        RebuildProjectionFields.Map, Compliance.DatacenterAccessFields.Map,
        Kubernetes.KubernetesFields.Map, Apps.AppFields.Map,
        Network.VpcQueries.Map, Ingresses.IngressFields.Map,
        Images.AddRegistryCredentialField.Map, Images.RemoveRegistryCredentialField.Map, Images.RegistryCredentialQueries.Map,
        Logs.PodLogsQuery.Map,
    ];

    public static ISchema Build(IServiceProvider services)
    {
        var schema = Schema.For(Sdl, builder =>
        {
            builder.ServiceProvider = services;
            var fields = new Fields(builder.Types);
            foreach (var map in Slices) map(fields);
            if (Unresolved(fields.Mapped) is { Count: > 0 } missing)
                throw new InvalidOperationException($"schema.graphql has fields no slice resolves: {string.Join(", ", missing)}.");
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
        using var stream = typeof(KraudSchema).Assembly.GetManifestResourceStream("Kraud.schema.graphql")
            ?? throw new InvalidOperationException("schema.graphql is not embedded in Kraud.Api.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
