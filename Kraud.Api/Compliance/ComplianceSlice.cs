using Kraud.Api.Common;

namespace Kraud.Api.Compliance;

/// <summary>The compliance report and the datacenter's physical access log.</summary>
public sealed class ComplianceSlice : KraudSlice
{
    public override void MapFields(Fields fields) => DatacenterAccessFields.Map(fields);
}
