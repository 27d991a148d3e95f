using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Api;

public sealed record IngressReplica(string HostId, string Zone);

public sealed record Route(string Host, string Path, string PodId, int Port);

public sealed record Domain(string Name, bool Verified, string VerificationToken);

public sealed record Ingress(string Id, string Name, string Kind, string State, string Readiness, IReadOnlyList<IngressReplica> Replicas,
    IReadOnlyList<Route> Routes, IReadOnlyList<Domain> Domains, string? PublicAddress, IReadOnlyList<string> Warnings);

public static class IngressesApi
{
    private const string Fields = """
        id name kind state readiness replicas { hostId zone } routes { host path podId port } domains { name verified verificationToken }
        publicAddress warnings
        """;

    public static readonly Operation<IReadOnlyList<Ingress>> List = new("ingresses", $$"""query Ingresses { ingresses { {{Fields}} } }""");

    public static readonly Operation<Ingress> Create = new("createIngress", $$"""
        mutation CreateIngress($input: CreateIngressInput!) { createIngress(input: $input) { {{Fields}} } }
        """);

    public static readonly Operation<Ingress> Delete = new("deleteIngress", $$"""mutation DeleteIngress($id: ID!) { deleteIngress(id: $id) { {{Fields}} } }""");

    public static readonly Operation<Domain> AddDomain = new("addDomain", """
        mutation AddDomain($ingressId: ID!, $name: String!) { addDomain(ingressId: $ingressId, name: $name) { name verified verificationToken } }
        """);

    public static readonly Operation<Domain> VerifyDomain = new("verifyDomain", """
        mutation VerifyDomain($ingressId: ID!, $name: String!) { verifyDomain(ingressId: $ingressId, name: $name) { name verified verificationToken } }
        """);

    public static async Task<Ingress> FindAsync(CommandContext c, string idOrName) =>
        (await c.RunAsync(List)).SingleOrDefault(i => i.Id == idOrName || i.Name == idOrName)
        ?? throw new KraudApiException("NOT_FOUND", $"No ingress {idOrName}.");
}
