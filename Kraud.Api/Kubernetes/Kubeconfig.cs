using System.Text;
using Kraud.Domain.Kubernetes;

namespace Kraud.Api.Kubernetes;

/// <summary>A kubeconfig (kubectl's client configuration) with the cluster's CA and a client certificate embedded.</summary>
public static class Kubeconfig
{
    /// <summary>
    /// The cluster's Kubernetes API (Kubernetes:ApiUrl, one listener for every cluster, the cluster by path); null when
    /// Kraud serves none.
    /// </summary>
    public static string? Server(KubernetesCluster cluster, Uri? apiBase) => apiBase is null ? null : $"{apiBase.ToString().TrimEnd('/')}/clusters/{cluster.Id}";

    public static string Render(KubernetesCluster cluster, IssuedCertificate client, Uri? apiBase)
    {
        var server = Server(cluster, apiBase) ?? throw new Domain.Common.DomainException(Domain.Common.ErrorCode.Precondition,
            "This Kraud serves no Kubernetes API (Kubernetes:ApiUrl is not set), so a kubeconfig would name no server.");
        static string B64(string pem) => Convert.ToBase64String(Encoding.UTF8.GetBytes(pem));
        var user = $"{cluster.Name}-admin";
        return $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: {cluster.Name}
              cluster:
                server: {server}
                tls-server-name: {ClusterApi.ServingCertificates.ServerName(cluster.Id)}
                certificate-authority-data: {B64(cluster.CaCertificatePem)}
            users:
            - name: {user}
              user:
                client-certificate-data: {B64(client.CertificatePem)}
                client-key-data: {B64(client.KeyPem)}
            contexts:
            - name: {cluster.Name}
              context:
                cluster: {cluster.Name}
                user: {user}
            current-context: {cluster.Name}

            """;
    }
}
