using System.Security.Cryptography.X509Certificates;
using Kraud.Api.Kubernetes;

namespace Kraud.Tests.Api;

public class ClusterCertificateSpecs
{
    [Fact]
    public void every_client_certificate_carries_the_serial_number_the_cluster_records_for_it()
    {
        // One serial in 128 began with a zero byte, which DER drops: the cluster then refused its own certificate.
        var now = DateTimeOffset.UtcNow;
        var (caPem, caKey) = ClusterCertificates.CreateCa("spec", now);
        for (var i = 0; i < 1000; i++)
        {
            var issued = ClusterCertificates.IssueClient(caPem, caKey, "admin", "system:masters", now);
            using var certificate = X509Certificate2.CreateFromPem(issued.CertificatePem);
            Assert.Equal(issued.SerialNumber, certificate.SerialNumber);
        }
    }
}
