using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Kraud.Domain.Common;

namespace Kraud.Domain.KubernetesApi;

/// <summary>Kubernetes' naming rules and how Kubernetes names map onto Kraud's.</summary>
public static partial class KubeNames
{
    /// <summary>Kubernetes' own alphabet for generated suffixes (no vowels, no look-alikes).</summary>
    private const string Alphabet = "bcdfghjklmnpqrstvwxz2456789";

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex DnsSubdomain();

    /// <summary>Deployments must leave room for the ReplicaSet's and the pod's suffixes within a 63-character DNS label.</summary>
    public const int MaxDeploymentName = 46;

    public static void RequireObjectName(string kind, string name)
    {
        switch (kind)
        {
            case "Namespace" or "Service":
                Names.RequireDnsLabel(name, "metadata.name");
                break;
            case "Deployment":
                Names.RequireDnsLabel(name, "metadata.name");
                if (name.Length > MaxDeploymentName)
                    throw DomainException.Validation(
                        $"metadata.name '{name}' is longer than {MaxDeploymentName} characters (its ReplicaSets and pods add suffixes within 63).");
                break;
            default:
                if (string.IsNullOrEmpty(name) || name.Length > 253 || !DnsSubdomain().IsMatch(name))
                    throw DomainException.Validation(
                        $"metadata.name '{name}' is not a valid name: a DNS subdomain of lowercase letters, digits, '-' and '.', at most 253 characters.");
                break;
        }
    }

    /// <summary>A stable short hash in Kubernetes' alphabet (pod-template-hash, pod suffixes).</summary>
    public static string Hash(string text, int length)
    {
        var bytes = SHA256.HashData(Encoding.UTF8.GetBytes(text));
        var chars = new char[length];
        for (var i = 0; i < length; i++) chars[i] = Alphabet[bytes[i] % Alphabet.Length];
        return new string(chars);
    }

    public static string ReplicaSetName(string deployment, string templateHash) => $"{deployment}-{templateHash}";

    /// <summary>
    /// The Kraud pod of a ReplicaSet: its name carries the revision too, because a Deployment deleted and applied again
    /// makes the same ReplicaSet name while the old pod may still be stopping (and pod names are unique per namespace).
    /// </summary>
    public static string ReplicaSetPodName(string replicaSet, int revision) => $"{replicaSet}-{revision}";

    /// <summary>A Kubernetes pod is one microVM of the ReplicaSet's Kraud pod: a new microVM (restart, reschedule) is a new pod.</summary>
    public static string PodName(string replicaSet, Guid vmId) => $"{replicaSet}-{Hash(vmId.ToString(), 5)}";

    /// <summary>A PersistentVolumeClaim's Kraud volume: one per claim object (a claim made again gets a new, empty one).</summary>
    public static Guid ClaimVolumeId(Guid claimStreamId, Guid claimUid) => DeterministicId.From("k8s-pvc", claimStreamId, claimUid);

    /// <summary>The claim's volume's name among the tenant's volumes (unique per tenant, as cluster names are).</summary>
    public static string ClaimVolumeName(string clusterName, string k8sNamespace, string claim, Guid claimUid)
    {
        var full = $"k8s-{clusterName}-{k8sNamespace}-{claim}-{Hash(claimUid.ToString(), 5)}";
        return full.Length <= 63 ? full : $"k8s-{clusterName}-{Hash($"{k8sNamespace}/{claim}/{claimUid}", 12)}";
    }

    /// <summary>A Service of type LoadBalancer's managed ingress: one per Service object (a Service made again gets a new one).</summary>
    public static Guid LoadBalancerIngressId(Guid serviceStreamId, Guid serviceUid) => DeterministicId.From("k8s-service-lb", serviceStreamId, serviceUid);

    /// <summary>The ingress's name among the tenant's ingresses (unique per tenant, as cluster names are).</summary>
    public static string LoadBalancerIngressName(string clusterName, string k8sNamespace, string service)
    {
        var full = $"k8s-{clusterName}-{k8sNamespace}-{service}";
        return full.Length <= 63 ? full : $"k8s-{clusterName}-{Hash($"{k8sNamespace}/{service}", 12)}";
    }

    /// <summary>
    /// The host name a LoadBalancer Service answers at, under the platform's ingress domain (served without a domain
    /// check): the Service, its namespace and the cluster, so that no other cluster's Service gets the same.
    /// </summary>
    public static string LoadBalancerHost(Guid clusterId, string k8sNamespace, string service)
    {
        var cluster = clusterId.ToString("N")[..8];
        var label = $"{service}-{k8sNamespace}-{cluster}";
        if (label.Length > 63) label = $"svc-{Hash($"{k8sNamespace}/{service}", 12)}-{cluster}";
        return $"{label}.{Ingresses.Ingress.PlatformDomain}";
    }

    /// <summary>
    /// The Kraud namespace a cluster's Kubernetes namespace maps to (each gets a VPC overlay of its own). Both names are
    /// DNS labels; when together they are too long, a hash keeps the pair unique.
    /// </summary>
    public static string KraudNamespace(string clusterName, string k8sNamespace)
    {
        var full = $"k8s-{clusterName}-{k8sNamespace}";
        return full.Length <= 63 ? full : $"k8s-{clusterName}-{Hash(k8sNamespace, 10)}";
    }
}
