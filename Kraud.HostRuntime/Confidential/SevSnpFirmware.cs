using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Kraud.Domain.Confidential;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Confidential;

/// <summary>How the next report is forged (fault injection): signed by a key the chain does not certify, or under a chain of a foreign root.</summary>
public enum AttestationForgery { ForeignKey, ForeignChain }

/// <summary>
/// The simulated AMD secure processor of one SEV-SNP host: it holds the host's attestation key (a VCEK stand-in, made at
/// start and never leaving this object), measures what the host launches and signs reports about it.
/// </summary>
public sealed class SevSnpFirmware : IDisposable
{
    private readonly string _hostName;
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly IReadOnlyList<string> _chain;

    public SevSnpFirmware(string hostName, SimulatedSevSnpAuthority authority)
    {
        _hostName = hostName;
        using var certificate = authority.Certify(hostName, _key);
        _chain = [certificate.ExportCertificatePem(), authority.Intermediate.ExportCertificatePem()];
    }

    /// <summary>The report for a guest launched with <paramref name="launched"/>: its measurement as report data, signed.</summary>
    public AttestationReport Report(MicroVmSpec launched, AttestationForgery? forgery = null)
    {
        var data = LaunchConfigurations.For(launched).Measurement();
        var signed = AttestationReport.SignedBytes(launched.VmId, data);
        switch (forgery)
        {
            case AttestationForgery.ForeignKey:
                {
                    using var foreign = ECDsa.Create(ECCurve.NamedCurves.nistP384);
                    return new AttestationReport(launched.VmId, data, Convert.ToBase64String(foreign.SignData(signed, HashAlgorithmName.SHA384)), _chain);
                }
            case AttestationForgery.ForeignChain:
                {
                    using var rogue = SimulatedSevSnpAuthority.CreateInMemory();
                    using var foreign = ECDsa.Create(ECCurve.NamedCurves.nistP384);
                    using var certificate = rogue.Certify(_hostName, foreign);
                    return new AttestationReport(launched.VmId, data, Convert.ToBase64String(foreign.SignData(signed, HashAlgorithmName.SHA384)),
                        [certificate.ExportCertificatePem(), rogue.Intermediate.ExportCertificatePem(), rogue.Root.ExportCertificatePem()]);
                }
            default:
                return new AttestationReport(launched.VmId, data, Convert.ToBase64String(_key.SignData(signed, HashAlgorithmName.SHA384)), _chain);
        }
    }

    public void Dispose() => _key.Dispose();
}
