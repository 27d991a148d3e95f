using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Kraud.Domain.Confidential;

/// <summary>What the control plane concluded from a host's attestation report.</summary>
public sealed record AttestationVerdict(bool Verified, string Measurement, string? Reason)
{
    public static AttestationVerdict Failed(string reason, string measurement = "") => new(false, measurement, reason);
}

/// <summary>The roots of trust for attestation keys (AMD's ARK in production; the simulated fleet's own test root otherwise).</summary>
public sealed record AttestationTrust(IReadOnlyList<X509Certificate2> Roots);

/// <summary>
/// Checks a report the way a relying party checks an AMD SEV-SNP report: the chain leads from the host's key to a root
/// it trusts (never to one the report brings along), the key belongs to the host that booted the guest, the signature
/// verifies with that key, and the report data is exactly the measurement the control plane expected.
/// </summary>
public static class AttestationVerifier
{
    public static AttestationVerdict Verify(AttestationReport? report, string expectedMeasurement, Guid vmId, string hostName, AttestationTrust trust,
        DateTimeOffset at)
    {
        if (report is null) return AttestationVerdict.Failed("the host returned no attestation report (it cannot run SEV-SNP guests)");
        if (report.VmId != vmId) return AttestationVerdict.Failed($"the report is for microVM {report.VmId}, not {vmId}");
        if (trust.Roots.Count == 0) return AttestationVerdict.Failed("the control plane trusts no attestation root");

        List<X509Certificate2> certificates;
        try
        {
            certificates = report.CertificateChainPem.Select(pem => X509Certificate2.CreateFromPem(pem)).ToList();
        }
        catch (CryptographicException e)
        {
            return AttestationVerdict.Failed($"the report's certificate chain cannot be read: {e.Message}");
        }
        if (certificates.Count == 0) return AttestationVerdict.Failed("the report carries no certificate for its signing key");
        try
        {
            var leaf = certificates[0];
            if (ChainProblem(leaf, certificates.Skip(1), trust, at) is { } problem)
                return AttestationVerdict.Failed($"the attestation key's certificate chain does not lead to a trusted root: {problem}");
            var owner = leaf.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            if (!string.Equals(owner, hostName, StringComparison.Ordinal))
                return AttestationVerdict.Failed($"the attestation key belongs to host '{owner}', but the guest was booted on '{hostName}'");

            using var key = leaf.GetECDsaPublicKey();
            if (key is null || key.KeySize != 384) return AttestationVerdict.Failed("the attestation key is not an ECDSA P-384 key");
            byte[] signature;
            try
            {
                signature = Convert.FromBase64String(report.Signature);
            }
            catch (FormatException)
            {
                return AttestationVerdict.Failed("the report's signature is not base64");
            }
            if (!key.VerifyData(AttestationReport.SignedBytes(report.VmId, report.ReportData), signature, HashAlgorithmName.SHA384))
                return AttestationVerdict.Failed("the report's signature does not verify with the host's certified attestation key", report.ReportData);

            return string.Equals(report.ReportData, expectedMeasurement, StringComparison.Ordinal)
                ? new AttestationVerdict(true, report.ReportData, null)
                : AttestationVerdict.Failed(
                    $"measurement mismatch: the host launched {Short(report.ReportData)}, the control plane expected {Short(expectedMeasurement)} " +
                    "(the launch configuration was changed on the way to the guest)", report.ReportData);
        }
        finally
        {
            foreach (var c in certificates) c.Dispose();
        }
    }

    private static string? ChainProblem(X509Certificate2 leaf, IEnumerable<X509Certificate2> intermediates, AttestationTrust trust, DateTimeOffset at)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = at.UtcDateTime;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.CustomTrustStore.AddRange(trust.Roots.ToArray());
        // A root the report brings along is only a candidate intermediate: trust comes from the verifier's own roots.
        chain.ChainPolicy.ExtraStore.AddRange(intermediates.ToArray());
        if (!chain.Build(leaf))
        {
            var statuses = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct();
            return string.Join("; ", statuses) is { Length: > 0 } text ? text : "the chain could not be built";
        }
        // ARK -> ASK -> VCEK: the key must be vouched for by an intermediate, as AMD's chain is.
        return chain.ChainElements.Count == 3 ? null : $"expected root -> intermediate -> attestation key, got {chain.ChainElements.Count} certificates";
    }

    private static string Short(string measurement) => measurement.Length > 16 ? measurement[..16] + "…" : measurement;
}
