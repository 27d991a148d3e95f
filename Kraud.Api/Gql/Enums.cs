using Kraud.Domain.Common;

namespace Kraud.Api.Gql;

/// <summary>C# enums are PascalCase single words; the contract's enum values are the same words upper-cased.</summary>
public static class Enums
{
    public static string Name<T>(T value) where T : struct, Enum => value.ToString().ToUpperInvariant();

    public static T Parse<T>(string value, string field) where T : struct, Enum =>
        Enum.TryParse<T>(value, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
            ? parsed
            : throw DomainException.Validation($"{field} '{value}' is not one of {string.Join(", ", Enum.GetNames<T>().Select(n => n.ToUpperInvariant()))}.");
}
