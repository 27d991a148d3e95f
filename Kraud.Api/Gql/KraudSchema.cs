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
    ];

    public static ISchema Build(IServiceProvider services)
    {
        var schema = Schema.For(Sdl, builder =>
        {
            builder.ServiceProvider = services;
            var fields = new Fields(builder.Types);
            foreach (var map in Slices) map(fields);
            RefuseUnbuilt(fields);
        });
        schema.RegisterType(new JsonGraphType());
        return schema;
    }

    /// <summary>Contract fields whose capability is not built yet answer with a clear NOT_IMPLEMENTED error instead of null.</summary>
    private static void RefuseUnbuilt(Fields fields)
    {
        var document = GraphQLParser.Parser.Parse(Sdl);
        foreach (var type in document.Definitions.OfType<GraphQLObjectTypeDefinition>().Where(t => (string)t.Name.Value is "Query" or "Mutation"))
        foreach (var field in type.Fields?.Items ?? [])
        {
            var (typeName, fieldName) = ((string)type.Name.Value, (string)field.Name.Value);
            if (fields.Mapped.Contains((typeName, fieldName))) continue;
            fields.On<object?>(typeName, fieldName, _ => throw new ExecutionError(
                $"{typeName}.{fieldName} is part of the contract but not available in this Kraud version yet.") { Code = "NOT_IMPLEMENTED" });
        }
    }

    private static string ReadSdl()
    {
        using var stream = typeof(KraudSchema).Assembly.GetManifestResourceStream("Kraud.schema.graphql")
            ?? throw new InvalidOperationException("schema.graphql is not embedded in Kraud.Api.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
