using System.Reflection;
using Kraud.Api.Common;
using NetArchTest.Rules;

namespace Kraud.Tests.Api;

/// <summary>
/// Kraud.Api's folders are slices (one per resource or capability) and a few shared rooms: Common (what every slice
/// needs, the contracts and messages between slices), Gql (GraphQL over HTTP and the contract's types), Configuration
/// (start-up), Database (the embedded PostgreSQL), Telemetry (metrics and traces). A slice is wired in through its own <see cref="KraudSlice"/>, so the
/// shared rooms never import a slice, and slices reach each other only through Common. Read from the compiled assembly
/// (every type a type's code uses), not from using directives.
/// </summary>
public class ArchitectureSpecs
{
    private static readonly Assembly Api = typeof(KraudSlice).Assembly;
    private static readonly string[] Shared = ["Common", "Gql", "Configuration", "Database", "Telemetry"];

    /// <summary>Every folder of Kraud.Api that is not a shared room.</summary>
    private static IReadOnlyList<string> Slices { get; } = Api.GetTypes()
        .Select(t => t.Namespace?.Split('.') is ["Kraud", "Api", var folder, ..] ? folder : null)
        .OfType<string>().Distinct().Where(f => !Shared.Contains(f)).Order(StringComparer.Ordinal).ToList();

    private static IReadOnlyList<string> Imports(string folder, IEnumerable<string> others)
    {
        var result = Types.InAssembly(Api).That().ResideInNamespace($"Kraud.Api.{folder}")
            .ShouldNot().HaveDependencyOnAny(others.Select(o => $"Kraud.Api.{o}").ToArray()).GetResult();
        return result.IsSuccessful ? [] : result.FailingTypeNames.ToList();
    }

    [Fact]
    public void the_folders_of_kraud_api_are_slices_and_shared_rooms()
    {
        Assert.Contains("Pods", Slices);
        Assert.Contains("Volumes", Slices);
        Assert.Contains("Fleet", Slices);
        Assert.DoesNotContain("Common", Slices);
    }

    [Fact]
    public void the_rule_sees_an_import_where_there_is_one()
    {
        // Configuration uses Common (KraudSlice) and Gql: a rule that could not see those would pass on anything.
        Assert.NotEmpty(Imports("Configuration", ["Common"]));
        Assert.NotEmpty(Imports("Pods", ["Common"]));
        // And an import of a slice: these specs use Fleet's HostLiveness.
        Assert.False(Types.InAssembly(typeof(ArchitectureSpecs).Assembly).That().ResideInNamespace("Kraud.Tests.Api")
            .ShouldNot().HaveDependencyOn("Kraud.Api.Fleet").GetResult().IsSuccessful);
    }

    public static TheoryData<string> SliceNames => new(Slices);

    [Theory]
    [MemberData(nameof(SliceNames))]
    public void a_slice_imports_no_other_slice(string slice) => Assert.Empty(Imports(slice, Slices.Where(s => s != slice)));

    [Theory]
    [InlineData("Common")]
    [InlineData("Gql")]
    [InlineData("Configuration")]
    [InlineData("Database")]
    [InlineData("Telemetry")]
    public void a_shared_room_imports_no_slice(string room) => Assert.Empty(Imports(room, Slices));
}
