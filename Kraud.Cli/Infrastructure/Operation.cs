namespace Kraud.Cli.Infrastructure;

/// <summary>
/// A GraphQL document the CLI sends, and the field of <c>data</c> whose value it reads as <typeparamref name="T"/>.
/// Every document is a static field of this type, so a test can validate all of them against docs/contract.graphql.
/// </summary>
public sealed class Operation<T>(string field, string document) : IOperation
{
    public string Field { get; } = field;
    public string Document { get; } = document;
}

public interface IOperation
{
    string Field { get; }
    string Document { get; }
}
