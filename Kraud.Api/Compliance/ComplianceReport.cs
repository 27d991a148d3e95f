using System.Net;
using System.Text;
using FastEndpoints;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Domain.Products;
using Kraud.Domain.Volumes;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Kraud.Projections.Tenants;
using Kraud.Projections.Volumes;
using Marten;

namespace Kraud.Api.Compliance;

public sealed record ComplianceRequest
{
    public Guid? TenantId { get; init; }
    public DateTime? From { get; init; }
    public DateTime? To { get; init; }
    public string Format { get; init; } = "json";
}

public sealed record ResourceEvidence(Guid Id, string Kind, string Name, string State, string Product, string IsolationBarrier, string Redundancy,
    IReadOnlyList<string> Hosts, IReadOnlyList<string> Datacenters);

/// <param name="Encryption">What the host runtimes confirmed, never assumed: per replica, and how the data key is kept.</param>
public sealed record VolumeEvidence(Guid Id, string Name, string Class, string State, string? Zone, bool Encrypted, string Encryption, string Product,
    string IsolationBarrier, string Redundancy, IReadOnlyList<string> Hosts, IReadOnlyList<string> Datacenters);

public sealed record TenantEvidence(Guid Id, string Name, IReadOnlyList<ResourceEvidence> Resources, IReadOnlyList<VolumeEvidence> Volumes, string VolumeEncryption,
    string? VpcEncryption, IReadOnlyList<string> Datacenters);

public sealed record ComplianceReportDto(DateTime GeneratedAt, DateTime? From, DateTime? To, IReadOnlyList<TenantEvidence> Tenants,
    IReadOnlyList<DatacenterAccessDto> DatacenterAccess, IReadOnlyList<string> Notes);

/// <summary>
/// GET /api/exports/compliance-report (GDPR Art. 32 evidence): per tenant, each resource with the isolation barrier the
/// product table gives it and where it runs, the encryption of volumes and of the VPC, and the physical access log of the
/// datacenters involved. JSON, or HTML for people (format=html). Operators and platform auditors report on every
/// tenant; a tenant's ADMIN or AUDITOR on its own.
/// </summary>
public sealed class ComplianceReportEndpoint(TokenAuthenticator authenticator, IDocumentStore store, TimeProvider time) : Endpoint<ComplianceRequest>
{
    public override void Configure()
    {
        Get("/api/exports/compliance-report");
        AllowAnonymous(); // the bearer token is checked below, with the audit log's rules
        Summary(s => s.Summary = "GDPR Art. 32 evidence per tenant, as JSON or HTML.");
    }

    public override async Task HandleAsync(ComplianceRequest request, CancellationToken ct)
    {
        var (allowed, scope) = await AuditReaderAccess.AuthorizeAsync(HttpContext, authenticator, request.TenantId, request.Format, ["json", "html"], ct);
        if (!allowed) return;

        var report = await BuildAsync(scope, request, ct);
        if (request.Format == "html")
        {
            HttpContext.Response.ContentType = "text/html; charset=utf-8";
            await HttpContext.Response.WriteAsync(Html(report), ct);
        }
        else await Send.ResponseAsync(report, 200, ct);
    }

    private async Task<ComplianceReportDto> BuildAsync(Guid? scope, ComplianceRequest request, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var tenants = scope is { } only
            ? await session.Query<TenantView>().Where(t => t.Id == only).ToListAsync(ct)
            : await session.Query<TenantView>().OrderBy(t => t.Name).ToListAsync(ct);
        var hosts = (await session.Query<HostView>().ToListAsync(ct)).ToDictionary(h => h.Id, h => h.Host);
        var docker = ProductCatalog.All.Single(p => p.Name.StartsWith("Managed Docker", StringComparison.Ordinal));
        var confidential = ProductCatalog.All.Single(p => p.Name == "Confidential Compute");

        var evidence = new List<TenantEvidence>();
        foreach (var tenant in tenants)
        {
            var tenantId = tenant.Id;
            var pods = await session.Query<PodView>().Where(p => p.TenantId == tenantId).OrderBy(p => p.CreatedTicks).ToListAsync(ct);
            var resources = pods.Select(p =>
            {
                // A pod a cluster or an app made is part of that product (and carries its barrier and redundancy).
                var product = p.Pod.Spec.Confidential ? confidential : p.Pod.Owner?.Kind switch
                {
                    ResourceOwner.KubernetesCluster => ProductCatalog.All.Single(x => x.Name == "Managed Kubernetes"),
                    ResourceOwner.App => ProductCatalog.All.Single(x => x.Name == "Managed Apps"),
                    _ => docker,
                };
                var on = p.Pod.Instances.Select(i => hosts.GetValueOrDefault(i.HostId)).OfType<Kraud.Domain.Fleet.Host>().ToList();
                return new ResourceEvidence(p.Id, "pod", $"{p.Namespace}/{p.Name}", p.State.ToString().ToUpperInvariant(), product.Name, product.SecurityBarrier,
                    product.Redundancy, on.Select(h => h.Name).Distinct().Order().ToList(), on.Select(h => h.Datacenter).Distinct().Order().ToList());
            }).ToList();
            // An ingress is a resource too: its barrier is the product table's for its kind; where it runs, its replicas'
            // hosts (a DIRECT ingress: the hosts of the pods it exposes, which hold its firewall).
            var ingresses = await session.Query<Kraud.Projections.Ingresses.IngressView>().Where(i => i.TenantId == tenantId).ToListAsync(ct);
            resources.AddRange(ingresses.Select(v => v.Ingress).Where(i => !i.Deleted).OrderBy(i => i.CreatedAt).Select(i =>
            {
                var product = ProductCatalog.All.Single(x => x.Name == i.Kind switch
                {
                    Kraud.Domain.Ingresses.IngressKind.Authenticated => "Authenticated Ingress",
                    Kraud.Domain.Ingresses.IngressKind.Direct => "Direct Ingress",
                    _ => "Managed Ingress",
                });
                var on = i.Replicas.Select(r => hosts.GetValueOrDefault(r.HostId)).OfType<Kraud.Domain.Fleet.Host>().ToList();
                return new ResourceEvidence(i.Id, "ingress", i.Name, "ACTIVE", product.Name, product.SecurityBarrier, product.Redundancy,
                    on.Select(h => h.Name).Distinct().Order().ToList(), on.Select(h => h.Datacenter).Distinct().Order().ToList());
            }));
            var volumes = (await session.Query<VolumeView>().Where(v => v.TenantId == tenantId && v.State != VolumeState.Deleted)
                .OrderBy(v => v.CreatedTicks).ToListAsync(ct)).Select(v => Evidence(v.Volume, hosts)).ToList();
            var disks = pods.SelectMany(p => p.Pod.Instances.Where(_ => p.Pod.Spec.EphemeralGiB > 0).Select(i => (Pod: p, Vm: i))).ToList();
            volumes.AddRange(disks.Select(d => Ephemeral(d.Pod, d.Vm, hosts)));
            var vpc = await session.Query<Kraud.Projections.Network.VpcView>().FirstOrDefaultAsync(v => v.TenantId == tenantId, ct);
            evidence.Add(new TenantEvidence(tenant.Id, tenant.Name, resources, volumes, EncryptionSummary(volumes),
                vpc is null ? null : VpcEncryption(vpc.Vpc), resources.SelectMany(r => r.Datacenters).Concat(volumes.SelectMany(v => v.Datacenters)).Distinct().Order().ToList()));
        }

        var datacenters = hosts.Values.Select(h => h.Datacenter).Distinct().ToList();
        var from = request.From is { } f ? new DateTimeOffset(DateTime.SpecifyKind(f, DateTimeKind.Utc)) : (DateTimeOffset?)null;
        var to = request.To is { } t2 ? new DateTimeOffset(DateTime.SpecifyKind(t2, DateTimeKind.Utc)) : (DateTimeOffset?)null;
        var access = (await DatacenterAccessFields.QueryAsync(session, null, from, to, ct)).Where(a => datacenters.Contains(a.Datacenter))
            .Select(DatacenterAccessDto.From).ToList();
        return new ComplianceReportDto(time.GetUtcNow().UtcDateTime, request.From, request.To, evidence, access,
        [
            "Isolation barriers and redundancy are those of the product table for each resource's product.",
            "VPC traffic between hosts is WireGuard-encrypted, also inside one rack; each host runtime makes its own X25519 key and only the public half leaves it.",
            "Data keys are never part of this report or of any API response. Volume data keys are generated by host runtimes and kept by the control " +
            "plane only wrapped (AES-256-GCM) under a key-encryption key that only host runtimes hold; ephemeral disk keys never leave the host runtime's memory.",
        ]);
    }

    private static VolumeEvidence Evidence(Volume v, IReadOnlyDictionary<Guid, Kraud.Domain.Fleet.Host> hosts)
    {
        var product = ProductCatalog.All.Single(p => p.Name.StartsWith(v.Class switch
        {
            VolumeClass.Block => "Block",
            VolumeClass.Gfs => "GFS",
            VolumeClass.Red => "Red",
            _ => "Ephemeral",
        }, StringComparison.Ordinal));
        var on = v.Replicas.Select(r => hosts.GetValueOrDefault(r.HostId)).OfType<Kraud.Domain.Fleet.Host>().ToList();
        var confirmed = v.Replicas.Count(r => r.Phase == ReplicaPhase.Healthy && r.Encrypted);
        var encryption = v.KeyId is null
            ? "no data key yet: the volume is not set up"
            : $"own data key (AES-256), generated by a host runtime and kept wrapped; {confirmed} of {v.Desired} replicas confirmed encrypted by their host runtime";
        return new VolumeEvidence(v.Id, v.Name, v.Class.ToString().ToUpperInvariant(), v.State.ToString().ToUpperInvariant(), v.Zone, v.Encrypted, encryption,
            product.Name, product.SecurityBarrier, product.Redundancy, on.Select(h => h.Name).Order().ToList(), on.Select(h => h.Datacenter).Distinct().Order().ToList());
    }

    private static VolumeEvidence Ephemeral(PodView pod, Kraud.Domain.Pods.PodInstance vm, IReadOnlyDictionary<Guid, Kraud.Domain.Fleet.Host> hosts)
    {
        var product = ProductCatalog.All.Single(p => p.Name == "Ephemeral NVMe");
        var host = hosts.GetValueOrDefault(vm.HostId);
        return new VolumeEvidence(vm.VmId, $"ephemeral disk of {pod.Namespace}/{pod.Name} replica {vm.Replica}", "EPHEMERAL", vm.Phase.ToString().ToUpperInvariant(),
            host?.Zone, vm.EphemeralEncrypted,
            vm.EphemeralEncrypted
                ? "random key held only in the host runtime's memory, destroyed when the microVM stops (crypto-erase), confirmed by the host runtime"
                : "not confirmed encrypted by the host runtime (the microVM is not running yet)",
            product.Name, product.SecurityBarrier, product.Redundancy, host is null ? [] : [host.Name], host is null ? [] : [host.Datacenter]);
    }

    private static string VpcEncryption(Kraud.Domain.Network.Vpc vpc) =>
        $"{Kraud.Domain.Network.Vpc.Encryption}: every path between hosts of the VPC {vpc.Ipv6Prefix} ({vpc.Namespaces.Count} " +
        $"namespace{(vpc.Namespaces.Count == 1 ? "" : "s")}) is a WireGuard tunnel between the hosts' own X25519 keys";

    private static string EncryptionSummary(IReadOnlyList<VolumeEvidence> volumes)
    {
        if (volumes.Count == 0) return "no volumes or ephemeral disks: no tenant data at rest";
        var unconfirmed = volumes.Where(v => !v.Encrypted).ToList();
        return unconfirmed.Count == 0
            ? $"all {volumes.Count} volumes and ephemeral disks encrypted at rest, as their host runtimes confirmed"
            : $"{volumes.Count - unconfirmed.Count} of {volumes.Count} confirmed encrypted at rest; not (yet) confirmed: " +
              string.Join(", ", unconfirmed.Select(v => $"{v.Name} ({v.State})"));
    }

    private static string Html(ComplianceReportDto r)
    {
        static string E(object? v) => WebUtility.HtmlEncode(Convert.ToString(v, CultureInfo.InvariantCulture) ?? "");
        var html = new StringBuilder();
        html.Append("<!doctype html><html><head><meta charset=\"utf-8\"><title>Kraud compliance report</title>")
            .Append("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;padding:4px 8px;text-align:left}</style>")
            .Append("</head><body><h1>Kraud compliance report (GDPR Art. 32)</h1>")
            .Append($"<p>Generated {E(r.GeneratedAt.ToString("O"))}; period {E(r.From?.ToString("O") ?? "beginning")} to {E(r.To?.ToString("O") ?? "now")}.</p>");
        foreach (var t in r.Tenants)
        {
            html.Append($"<h2>Tenant {E(t.Name)}</h2><p>Datacenters: {E(string.Join(", ", t.Datacenters))}. Volumes: {E(t.VolumeEncryption)}. VPC encryption: {E(t.VpcEncryption ?? "not provisioned")}.</p>")
                .Append("<table><tr><th>Resource</th><th>State</th><th>Product</th><th>Isolation barrier</th><th>Redundancy</th><th>Hosts</th><th>Datacenters</th></tr>");
            foreach (var res in t.Resources)
                html.Append($"<tr><td>{E(res.Kind)} {E(res.Name)}</td><td>{E(res.State)}</td><td>{E(res.Product)}</td><td>{E(res.IsolationBarrier)}</td><td>{E(res.Redundancy)}</td>")
                    .Append($"<td>{E(string.Join(", ", res.Hosts))}</td><td>{E(string.Join(", ", res.Datacenters))}</td></tr>");
            html.Append("</table>");
            if (t.Volumes.Count > 0)
            {
                html.Append("<table><tr><th>Volume</th><th>Class</th><th>State</th><th>Encrypted</th><th>Encryption evidence</th><th>Isolation barrier</th><th>Redundancy</th><th>Hosts</th></tr>");
                foreach (var v in t.Volumes)
                    html.Append($"<tr><td>{E(v.Name)}</td><td>{E(v.Class)}</td><td>{E(v.State)}</td><td>{E(v.Encrypted ? "yes" : "NO")}</td><td>{E(v.Encryption)}</td>")
                        .Append($"<td>{E(v.IsolationBarrier)}</td><td>{E(v.Redundancy)}</td><td>{E(string.Join(", ", v.Hosts))}</td></tr>");
                html.Append("</table>");
            }
        }
        html.Append("<h2>Physical access to the datacenters</h2><table><tr><th>When</th><th>Datacenter</th><th>Person</th><th>Reason</th><th>Camera snapshot SHA-256</th></tr>");
        foreach (var a in r.DatacenterAccess)
            html.Append($"<tr><td>{E(a.At.ToString("O"))}</td><td>{E(a.Datacenter)}</td><td>{E(a.Person)}</td><td>{E(a.Reason)}</td><td><code>{E(a.CameraSnapshotSha256)}</code></td></tr>");
        html.Append("</table><h2>Notes</h2><ul>");
        foreach (var n in r.Notes) html.Append($"<li>{E(n)}</li>");
        return html.Append("</ul></body></html>").ToString();
    }
}
