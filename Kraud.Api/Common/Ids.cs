using Kraud.Domain.Common;

namespace Kraud.Api.Common;

public static class Ids
{
    /// <summary>Ids arrive as strings; one that is not a UUID can name nothing, so it is NOT_FOUND rather than a server error.</summary>
    public static Guid Parse(string? value, string what) =>
        Guid.TryParse(value, out var id) ? id : throw DomainException.NotFound(what, value ?? "");
}
