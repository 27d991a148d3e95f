using GraphQL;
using GraphQL.Types;
using Kraud.Api.Gql;

namespace Kraud.Api.Configuration;

public static class GraphQLSetup
{
    public static IServiceCollection AddKraudGraphQL(this IServiceCollection services)
    {
        services.AddGraphQL(b => b
            .AddSchema(sp => KraudSchema.Build(sp), GraphQL.DI.ServiceLifetime.Singleton)
            .AddSystemTextJson()
            // A span per GraphQL execution (operation name and type), under the HTTP request's.
            .UseTelemetry()
            .AddUnhandledExceptionHandler(ctx =>
            {
                if (ErrorCodes.Map(ctx.OriginalException) is { } error) ctx.Exception = error;
                else ctx.Context?.RequestServices?.GetService<ILoggerFactory>()?.CreateLogger("Kraud.GraphQL")
                    .LogError(ctx.OriginalException, "Unhandled error while resolving a GraphQL field");
            }));
        return services;
    }
}
