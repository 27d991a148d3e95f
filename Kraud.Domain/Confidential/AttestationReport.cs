using System.Text;

namespace Kraud.Domain.Confidential;

/// <summary>
/// What a SEV-SNP host returns for a confidential guest, modelled on AMD's attestation report: the report data (here the
/// launch measurement, hex), bound to one microVM, signed with ECDSA P-384/SHA-384 by the host's attestation key (AMD's
/// VCEK), with the certificates that vouch for that key, leaf first (VCEK, then ASK; the root ARK is never taken from
/// the report, the verifier has its own).
/// </summary>
public sealed record AttestationReport(Guid VmId, string ReportData, string Signature, IReadOnlyList<string> CertificateChainPem)
{
    public const string Format = "kraud-sev-snp-report/v1";

    /// <summary>The bytes the host's key signs: the format, the microVM and the report data, one per line.</summary>
    public static byte[] SignedBytes(Guid vmId, string reportData) => Encoding.UTF8.GetBytes($"{Format}\n{vmId:D}\n{reportData}");
}
