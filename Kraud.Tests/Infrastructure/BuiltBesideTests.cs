namespace Kraud.Tests.Infrastructure;

/// <summary>Programs of this solution, built beside the tests or the benchmark (same configuration: Debug or Release).</summary>
public static class BuiltBesideTests
{
    public static string Dll(string project, string? assembly = null)
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = testDir.Parent!.Name;
        var root = testDir;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Kraud.sln"))) root = root.Parent;
        var dll = Path.Combine(root!.FullName, project, "bin", configuration, testDir.Name, (assembly ?? project) + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"Build the solution first: {project} is missing.", dll);
    }
}
