using System.Text.Json;
using GraphQL;
using GraphQL.Transport;
using GraphQL.Types;
using GraphQLParser.AST;
using Kraud.Api.Common;

namespace Kraud.Api.Gql;

/// <summary>
/// GraphQL over HTTP at /graphql. Requests that cannot run (bad JSON, no query, a document that does not parse or
/// validate, no valid token) get a 4xx with a GraphQL error body, never a 500; a mutation over GET is 405.
/// </summary>
public static class GraphQLEndpoint
{
    public const string Path = "/graphql";
    private const string GraphQLResponse = "application/graphql-response+json";

    public static void MapKraudGraphQL(this WebApplication app)
    {
        app.MapPost(Path, PostAsync);
        app.MapGet(Path, GetAsync);
    }

    private static async Task PostAsync(HttpContext http, IGraphQLTextSerializer serializer)
    {
        if (http.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            await WriteErrorAsync(http, serializer, StatusCodes.Status415UnsupportedMediaType, "VALIDATION",
                "Send the request as Content-Type: application/json with a body {\"query\": …, \"variables\": …}.");
            return;
        }
        GraphQLRequest? request;
        try
        {
            request = await serializer.ReadAsync<GraphQLRequest>(http.Request.Body, http.RequestAborted);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or FormatException)
        {
            await WriteErrorAsync(http, serializer, StatusCodes.Status400BadRequest, "VALIDATION", $"The request body is not valid JSON: {e.Message}");
            return;
        }
        await ExecuteAsync(http, serializer, request, viaGet: false);
    }

    private static async Task GetAsync(HttpContext http, IGraphQLTextSerializer serializer)
    {
        var q = http.Request.Query;
        Inputs? variables = null;
        if (q.TryGetValue("variables", out var raw) && !string.IsNullOrEmpty(raw))
        {
            try
            {
                variables = serializer.Deserialize<Inputs>(raw!);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                await WriteErrorAsync(http, serializer, StatusCodes.Status400BadRequest, "VALIDATION", $"variables is not valid JSON: {e.Message}");
                return;
            }
        }
        var request = new GraphQLRequest { Query = q["query"], OperationName = q["operationName"], Variables = variables };
        await ExecuteAsync(http, serializer, request, viaGet: true);
    }

    private static async Task ExecuteAsync(HttpContext http, IGraphQLTextSerializer serializer, GraphQLRequest? request, bool viaGet)
    {
        var services = http.RequestServices;
        var principal = await services.GetRequiredService<TokenAuthenticator>().AuthenticateAsync(http);
        if (principal is null)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            await WriteErrorAsync(http, serializer, StatusCodes.Status401Unauthorized, "UNAUTHENTICATED",
                "Send a valid API token: Authorization: Bearer <token>.");
            return;
        }
        if (string.IsNullOrWhiteSpace(request?.Query))
        {
            await WriteErrorAsync(http, serializer, StatusCodes.Status400BadRequest, "VALIDATION", "The request has no GraphQL query.");
            return;
        }
        if (viaGet && IsMutation(request.Query, request.OperationName))
        {
            http.Response.Headers.Allow = "POST";
            await WriteErrorAsync(http, serializer, StatusCodes.Status405MethodNotAllowed, "VALIDATION", "Mutations must be sent with POST.");
            return;
        }

        var caller = new Caller(principal, http.Connection.RemoteIpAddress?.ToString(), Correlation.Of(http)) { Ids = RequestIds.Of(http) };
        var result = await services.GetRequiredService<IDocumentExecuter<ISchema>>().ExecuteAsync(options =>
        {
            options.Query = request.Query;
            options.OperationName = request.OperationName;
            options.Variables = request.Variables;
            options.Extensions = request.Extensions;
            options.RequestServices = services;
            options.UserContext = new KraudUserContext(caller);
            options.CancellationToken = http.RequestAborted;
        });
        // The document never ran (it did not parse or validate, or a variable did not fit): that is the client's error.
        http.Response.StatusCode = result.Executed ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest;
        http.Response.ContentType = ResponseType(http);
        await serializer.WriteAsync(http.Response.Body, result, http.RequestAborted);
    }

    public static bool IsMutation(string query, string? operationName)
    {
        try
        {
            var operations = GraphQLParser.Parser.Parse(query).Definitions.OfType<GraphQLOperationDefinition>().ToList();
            var operation = operationName is null ? operations.FirstOrDefault() : operations.FirstOrDefault(o => o.Name?.Value == operationName);
            return operation?.Operation == OperationType.Mutation;
        }
        catch (GraphQLParser.Exceptions.GraphQLSyntaxErrorException)
        {
            return false; // the executer reports the syntax error itself
        }
    }

    private static string ResponseType(HttpContext http)
    {
        var accept = http.Request.Headers.Accept.ToString();
        return accept.Contains("application/json", StringComparison.OrdinalIgnoreCase) && !accept.Contains(GraphQLResponse, StringComparison.OrdinalIgnoreCase)
            ? "application/json; charset=utf-8"
            : GraphQLResponse + "; charset=utf-8";
    }

    public static async Task WriteErrorAsync(HttpContext http, IGraphQLTextSerializer serializer, int status, string code, string message)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = ResponseType(http);
        var result = new ExecutionResult { Errors = [new ExecutionError(message) { Code = code }] };
        await serializer.WriteAsync(http.Response.Body, result, http.RequestAborted);
    }
}
