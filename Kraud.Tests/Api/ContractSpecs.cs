using System.Text.Json;
using GraphQLParser.AST;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>Clients and acceptance checks are written against docs/contract.graphql: the served schema must contain all of it.</summary>
[Collection(ApiCollection.Name)]
public class ContractSpecs(KraudApp app)
{
    private const string TypeRef = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

    private static readonly string Introspection = $$"""
        { __schema { types { kind name
            fields(includeDeprecated: true) { name type { {{TypeRef}} } args { name type { {{TypeRef}} } } }
            inputFields { name type { {{TypeRef}} } }
            enumValues(includeDeprecated: true) { name } } } }
        """;

    [Fact]
    public async Task the_served_schema_contains_every_type_field_and_argument_of_the_contract()
    {
        var served = (await app.AsOperator(Introspection)).ShouldSucceed().Data.GetProperty("__schema").GetProperty("types")
            .EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        var contract = GraphQLParser.Parser.Parse(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "contract.graphql")));
        var missing = new List<string>();
        var checkedItems = 0;

        // `extend type` blocks are contract too (the CLI's additions are written so).
        foreach (var definition in contract.Definitions.Where(d => d is GraphQLTypeDefinition or GraphQLObjectTypeExtension))
        {
            var name = definition switch
            {
                GraphQLTypeDefinition t => (string)t.Name.Value,
                _ => (string)((GraphQLObjectTypeExtension)definition).Name.Value,
            };
            if (!served.TryGetValue(name, out var type))
            {
                missing.Add($"type {name}");
                continue;
            }
            checkedItems++;
            switch (definition)
            {
                case GraphQLObjectTypeDefinition or GraphQLObjectTypeExtension:
                    var fields = definition is GraphQLObjectTypeDefinition o ? o.Fields : ((GraphQLObjectTypeExtension)definition).Fields;
                    foreach (var field in fields?.Items ?? [])
                    {
                        checkedItems++;
                        var servedField = Find(type, "fields", field.Name.Value);
                        if (servedField is null) { missing.Add($"{name}.{field.Name.Value}"); continue; }
                        Expect($"{name}.{field.Name.Value}", field.Type, servedField.Value.GetProperty("type"), missing);
                        foreach (var arg in field.Arguments?.Items ?? [])
                        {
                            checkedItems++;
                            var servedArg = Find(servedField.Value, "args", arg.Name.Value);
                            if (servedArg is null) missing.Add($"{name}.{field.Name.Value}({arg.Name.Value})");
                            else Expect($"{name}.{field.Name.Value}({arg.Name.Value})", arg.Type, servedArg.Value.GetProperty("type"), missing);
                        }
                    }
                    break;
                case GraphQLInputObjectTypeDefinition i:
                    foreach (var field in i.Fields?.Items ?? [])
                    {
                        checkedItems++;
                        var servedField = Find(type, "inputFields", field.Name.Value);
                        if (servedField is null) missing.Add($"{name}.{field.Name.Value}");
                        else Expect($"{name}.{field.Name.Value}", field.Type, servedField.Value.GetProperty("type"), missing);
                    }
                    break;
                case GraphQLEnumTypeDefinition e:
                    foreach (var value in e.Values?.Items ?? [])
                    {
                        checkedItems++;
                        if (Find(type, "enumValues", value.Name.Value) is null) missing.Add($"{name}.{value.Name.Value}");
                    }
                    break;
                case GraphQLScalarTypeDefinition:
                    if (type.GetProperty("kind").GetString() != "SCALAR") missing.Add($"scalar {name}");
                    break;
            }
        }
        Assert.True(missing.Count == 0, "Missing or different from the contract: " + string.Join(", ", missing));
        Assert.True(checkedItems > 300, $"the contract was read ({checkedItems} items checked)");
    }

    private static JsonElement? Find(JsonElement type, string list, ReadOnlyMemory<char> name)
    {
        if (!type.TryGetProperty(list, out var items) || items.ValueKind != JsonValueKind.Array) return null;
        foreach (var item in items.EnumerateArray())
            if (item.GetProperty("name").GetString() == name.ToString()) return item;
        return null;
    }

    private static void Expect(string where, GraphQLType expected, JsonElement served, List<string> missing)
    {
        var want = Render(expected);
        var got = Render(served);
        if (want != got) missing.Add($"{where}: {got} instead of {want}");
    }

    private static string Render(GraphQLType type) => type switch
    {
        GraphQLNonNullType n => Render(n.Type) + "!",
        GraphQLListType l => "[" + Render(l.Type) + "]",
        GraphQLNamedType t => (string)t.Name.Value,
        _ => "?",
    };

    private static string Render(JsonElement type) => type.GetProperty("kind").GetString() switch
    {
        "NON_NULL" => Render(type.GetProperty("ofType")) + "!",
        "LIST" => "[" + Render(type.GetProperty("ofType")) + "]",
        _ => type.GetProperty("name").GetString()!,
    };

    [Fact]
    public async Task products_return_the_product_table_of_the_specification()
    {
        var products = (await app.AsOperator("{ products { name category sla redundancy securityBarrier readiness notes } }")).ShouldSucceed()
            .Data.GetProperty("products").EnumerateArray().ToList();
        Assert.Equal(11, products.Count);
        var docker = Assert.Single(products, p => p.GetProperty("name").GetString() == "Managed Docker (pods)");
        Assert.Equal("N+2 hosts in 1 zone", docker.GetProperty("redundancy").GetString());
        Assert.Equal("USABLE", docker.GetProperty("readiness").GetString());
        var confidential = Assert.Single(products, p => p.GetProperty("name").GetString() == "Confidential Compute");
        Assert.Equal("AMD SEV-SNP", confidential.GetProperty("securityBarrier").GetString());
        Assert.Equal("EXPERIMENTAL", confidential.GetProperty("readiness").GetString());
        Assert.All(products, p => Assert.False(p.GetProperty("sla").GetBoolean()));
    }
}
