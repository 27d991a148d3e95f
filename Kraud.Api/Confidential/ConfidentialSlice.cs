using Kraud.Api.Common;

namespace Kraud.Api.Confidential;

/// <summary>Confidential Compute: the roots SEV-SNP attestation reports are verified against.</summary>
public sealed class ConfidentialSlice : KraudSlice
{
    public override void AddServices(IServiceCollection services) => services.AddAttestationTrust();
}
