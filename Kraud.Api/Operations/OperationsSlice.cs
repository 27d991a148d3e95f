using Kraud.Api.Common;

namespace Kraud.Api.Operations;

/// <summary>Operator tools: rebuilding a projection while Kraud runs.</summary>
public sealed class OperationsSlice : KraudSlice
{
    public override void MapFields(Fields fields) => RebuildProjectionFields.Map(fields);

    public override void AddServices(IServiceCollection services) => services.AddSingleton<RebuildJobs>();
}
