using System.Text;
using Kraud.Domain.Kubernetes;

namespace Kraud.Api.Kubernetes;

/// <summary>A kubeconfig (kubectl's client configuration) with the cluster's CA and a client certificate embedded.</summary>
public static class Kubeconfig
{
    /// <summary>
    /// Where the API server would be published. Nothing answers there: Kraud models the cluster's control-plane machines and
    /// PKI, not a running kube-apiserver (see README, Managed Kubernetes).
    /// </summary>
    public static string Server(KubernetesCluster cluster) => $"https://{cluster.Name}.{cluster.Id:N}.k8s.kraud.internal:6443";

    public static string Render(KubernetesCluster cluster, IssuedCertificate client)
    {
        static string B64(string pem) => Convert.ToBase64String(Encoding.UTF8.GetBytes(pem));
        var user = $"{cluster.Name}-admin";
        return $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: {cluster.Name}
              cluster:
                server: {Server(cluster)}
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
