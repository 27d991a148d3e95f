namespace Kraud.Domain.Products;

public enum Readiness { Usable, Experimental }

public sealed record Product(string Name, string Category, bool Sla, string Redundancy, string SecurityBarrier, Readiness Readiness, string? Notes);

/// <summary>The product table of the specification, the single source for the API and for placement rules.</summary>
public static class ProductCatalog
{
    public static IReadOnlyList<Product> All { get; } =
    [
        new("Managed Docker (pods)", "compute", false, "N+2 hosts in 1 zone", "microVM + VPC", Readiness.Usable, null),
        new("Managed Kubernetes", "compute", false, "N+2 in 1 zone", "microVM + VPC", Readiness.Experimental, null),
        new("Managed Apps", "compute", false, "N+2 in 1 zone", "microVM + VPC", Readiness.Experimental, null),
        new("Confidential Compute", "compute", false, "1 node; not rescheduled on failure", "AMD SEV-SNP", Readiness.Experimental,
            "Runs only on SEV-SNP hosts; a host failure leaves the pod FAILED."),
        new("Managed Ingress", "ingress", false, "2N+1 across 2 zones", "isolated machine", Readiness.Usable, null),
        new("Authenticated Ingress", "ingress", false, "2N+1 across 2 zones", "isolated machine", Readiness.Experimental, null),
        new("Direct Ingress", "ingress", false, "1 rack; tenant does its own load balancing", "exposed: firewall inside the VM", Readiness.Experimental,
            "Requires acceptExposure and explicit firewall rules."),
        new("Ephemeral NVMe", "storage", false, "0: cleared on shutdown, restart, reschedule", "ephemeral encryption", Readiness.Usable, null),
        new("Block Volumes", "storage", false, "3 replicas in 1 zone", "isolated machine", Readiness.Usable, null),
        new("GFS Volumes", "storage", false, "3 replicas in 1 zone (shared file system)", "isolated machine", Readiness.Experimental, null),
        new("Red Volumes", "storage", false, "2 replicas in 1 zone; archival, reconstructible data only", "isolated machine", Readiness.Experimental,
            "Only for data you can reconstruct."),
    ];
}
