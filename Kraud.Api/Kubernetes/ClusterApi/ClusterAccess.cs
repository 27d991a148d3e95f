using System.Security.Cryptography.X509Certificates;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Kubernetes;
using Kraud.Projections.Kubernetes;
using Marten;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>Who asks, of which cluster: the principal Kraud's commands are decided for.</summary>
public sealed record KubeCaller(Principal Principal, KubernetesCluster Cluster, string User, IReadOnlyList<string> Groups);

/// <summary>
/// Authentication of a cluster's API: a client certificate issued by kubeconfig under this very cluster's CA and not
/// revoked (CN = the user, O = its groups; system:masters is the tenant's ADMIN), or a Kraud API token of the cluster's
/// tenant (its role). Anything else is 401, and says nothing about whether the cluster exists.
/// </summary>
public static class ClusterAccess
{
    public const string Masters = "system:masters";

    public static async Task<KubeCaller> AuthenticateAsync(HttpContext http, Guid clusterId, IServiceProvider services, CancellationToken ct)
    {
        await using var session = services.GetRequiredService<IDocumentStore>().QuerySession();
        var view = await session.LoadAsync<KubernetesClusterView>(clusterId, ct);
        var certificate = http.Connection.ClientCertificate;
        if (certificate is not null)
        {
            if (view is null || !IssuedBy(view.Cluster, certificate, services.GetRequiredService<TimeProvider>().GetUtcNow()))
                throw KubeApiException.Unauthorized("Unauthorized: the client certificate was not issued for this cluster, has expired or was revoked.");
            var user = certificate.GetNameInfo(X509NameType.SimpleName, false);
            var groups = certificate.SubjectName.EnumerateRelativeDistinguishedNames()
                .Where(n => n.GetSingleElementType().Value == "2.5.4.10").Select(n => n.GetSingleElementValue() ?? "").ToList();
            // The kubeconfig of a tenant's ADMIN; any other group set is a tenant MEMBER (Kraud issues no other yet).
            var role = groups.Contains(Masters) ? Role.Admin : Role.Member;
            var tokenId = user.StartsWith("token:", StringComparison.Ordinal) ? user["token:".Length..] : $"system:kubernetes:{user}";
            return new KubeCaller(new Principal(tokenId, role, view.Cluster.TenantId, user), view.Cluster, user, groups);
        }
        var principal = await services.GetRequiredService<TokenAuthenticator>().AuthenticateAsync(http.Request.Headers.Authorization.ToString(), ct);
        if (principal is null) throw KubeApiException.Unauthorized("Unauthorized: present a client certificate from this cluster's kubeconfig or a Kraud API token.");
        // Another tenant's token is as unknown here as no token: the cluster's existence does not leak.
        if (view is null || principal.TenantId != view.Cluster.TenantId)
            throw KubeApiException.Unauthorized("Unauthorized: this token does not belong to the cluster's tenant.");
        return new KubeCaller(principal, view.Cluster, principal.Actor, [principal.Role.ToString().ToUpperInvariant()]);
    }

    private static bool IssuedBy(KubernetesCluster cluster, X509Certificate2 certificate, DateTimeOffset now)
    {
        if (!cluster.Accepts(certificate.SerialNumber)) return false;
        using var ca = X509Certificate2.CreateFromPem(cluster.CaCertificatePem);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2"));
        return chain.Build(certificate) && chain.ChainElements.Count == 2 && chain.ChainElements[1].Certificate.RawDataMemory.Span.SequenceEqual(ca.RawDataMemory.Span);
    }
}
