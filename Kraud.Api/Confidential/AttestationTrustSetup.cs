using System.Security.Cryptography.X509Certificates;
using Kraud.Domain.Confidential;
using Kraud.HostRuntime.Confidential;
using Kraud.HostRuntime.Configuration;

namespace Kraud.Api.Confidential;

/// <summary>
/// The roots the control plane accepts attestation keys under: the PEM bundle in Attestation:TrustedRootsFile (AMD's ARKs
/// for real SEV-SNP hardware), else the simulated fleet's test root. Never a root a host's report brings along.
/// </summary>
public static class AttestationTrustSetup
{
    public static IServiceCollection AddAttestationTrust(this IServiceCollection services) =>
        services.AddSingleton(sp =>
        {
            var configuration = sp.GetRequiredService<IConfiguration>();
            if (configuration["Attestation:TrustedRootsFile"] is { Length: > 0 } file)
            {
                var roots = new X509Certificate2Collection();
                roots.ImportFromPemFile(file);
                if (roots.Count == 0) throw new InvalidOperationException($"Attestation:TrustedRootsFile {file} holds no certificate.");
                return new AttestationTrust([.. roots]);
            }
            return new AttestationTrust([SimulatedSevSnpAuthority.RootOf(sp.GetRequiredService<FleetOptions>().SevSnp.ResolvedAuthorityDirectory)]);
        });
}
