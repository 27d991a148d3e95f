using System.Reflection;
using GraphQL;
using GraphQL.Types;
using GraphQL.Validation;
using GraphQLParser.AST;
using Kraud.Api.Gql;
using Kraud.Cli.Infrastructure;

namespace Kraud.Tests.Cli;

/// <summary>
/// The CLI speaks the public contract, not whatever the server happens to serve: every GraphQL document it can send
/// (each is an <see cref="Operation{T}"/> field, the only kind its client takes) must validate against docs/contract.graphql.
/// </summary>
public class CliContractSpecs
{
    public static IEnumerable<object[]> Operations() =>
        typeof(Operation<>).Assembly.GetTypes()
            .SelectMany(t => t.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
            .Where(f => typeof(IOperation).IsAssignableFrom(f.FieldType))
            .Select(f => new object[] { $"{f.DeclaringType!.Name}.{f.Name}" });

    private static readonly Lazy<ISchema> Contract = new(() =>
    {
        var schema = Schema.For(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "contract.graphql")));
        schema.RegisterType(new JsonGraphType());
        schema.Initialize();
        return schema;
    });

    [Theory]
    [MemberData(nameof(Operations))]
    public async Task every_document_the_cli_sends_is_valid_against_the_contract(string operation)
    {
        var (typeName, fieldName) = (operation.Split('.')[0], operation.Split('.')[1]);
        var field = typeof(Operation<>).Assembly.GetTypes().Single(t => t.Name == typeName)
            .GetField(fieldName, BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
        var op = (IOperation)field.GetValue(null)!;
        var document = GraphQLParser.Parser.Parse(op.Document);
        var result = await new DocumentValidator().ValidateAsync(new ValidationOptions
        {
            Schema = Contract.Value,
            Document = document,
            Operation = document.Definitions.OfType<GraphQLOperationDefinition>().Single(),
            Rules = DocumentValidator.CoreRules,
            Variables = Inputs.Empty,
            Extensions = Inputs.Empty,
        });
        // Variables get their values at run time: only the document itself is checked here.
        var errors = result.Errors.Where(e => e is not InvalidVariableError).Select(e => e.Message).ToList();
        Assert.True(errors.Count == 0, $"{operation} is not valid against docs/contract.graphql: {string.Join("; ", errors)}");
        Assert.Contains(op.Field, document.Definitions.OfType<GraphQLOperationDefinition>().Single().SelectionSet.Selections
            .OfType<GraphQLField>().Select(f => (string)(f.Alias?.Name.Value ?? f.Name.Value)));
    }

    [Fact]
    public async Task a_document_with_a_field_the_contract_lacks_is_refused_by_this_check()
    {
        var document = GraphQLParser.Parser.Parse("query { pods { nodes { id somethingNew } totalCount } }");
        var result = await new DocumentValidator().ValidateAsync(new ValidationOptions
        {
            Schema = Contract.Value, Document = document, Operation = document.Definitions.OfType<GraphQLOperationDefinition>().Single(),
            Rules = DocumentValidator.CoreRules, Variables = Inputs.Empty, Extensions = Inputs.Empty,
        });
        Assert.False(result.IsValid);
        Assert.Contains(result.Errors, e => e.Message.Contains("somethingNew"));
    }
}
