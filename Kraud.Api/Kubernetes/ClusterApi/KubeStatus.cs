using System.Text.Json.Nodes;
using Kraud.Domain.Common;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>A refusal as Kubernetes answers it: a Status object with the HTTP code, a reason kubectl knows, and a message it prints.</summary>
public sealed class KubeApiException(int code, string reason, string message, string? kind = null, string? name = null) : Exception(message)
{
    public int Code { get; } = code;
    public string Reason { get; } = reason;
    public string? Kind { get; } = kind;
    public string? Name { get; } = name;

    public static KubeApiException NotFound(string resource, string name) => new(404, "NotFound", $"{resource} \"{name}\" not found", resource, name);

    public static KubeApiException BadRequest(string message) => new(400, "BadRequest", message);

    public static KubeApiException Invalid(string kind, string name, string message) =>
        new(422, "Invalid", $"{kind} \"{name}\" is invalid: {message}", kind, name);

    public static KubeApiException MethodNotAllowed(string message) => new(405, "MethodNotAllowed", message);

    public static KubeApiException Unauthorized(string message) => new(401, "Unauthorized", message);

    public static KubeApiException Forbidden(string message) => new(403, "Forbidden", message);

    public static KubeApiException Conflict(string kind, string name, string message) =>
        new(409, "Conflict", $"Operation cannot be fulfilled on {kind} \"{name}\": {message}", kind, name);
}

public static class KubeStatus
{
    // Built as JSON rather than with k8s.Models.V1Status: the client library reads a Status but cannot write one (its
    // converter's Write throws NotImplementedException).
    public static JsonObject Of(KubeApiException e)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Failure", ["message"] = e.Message,
            ["reason"] = e.Reason, ["code"] = e.Code,
        };
        if (e.Name is not null) status["details"] = new JsonObject { ["name"] = e.Name, ["kind"] = e.Kind };
        // kubectl prints an Invalid refusal's causes, not its message ("The Deployment "web" is invalid: * spec.replicas: …"),
        // so the field and what is wrong with it go there as well.
        if (e.Reason == "Invalid" && status["details"] is JsonObject details && e.Message.IndexOf(" is invalid: ", StringComparison.Ordinal) is var at and >= 0)
        {
            var problem = e.Message[(at + " is invalid: ".Length)..];
            var colon = problem.IndexOf(": ", StringComparison.Ordinal);
            var field = colon > 0 && !problem[..colon].Contains(' ', StringComparison.Ordinal) ? problem[..colon] : null;
            details["causes"] = new JsonArray(new JsonObject
            {
                ["reason"] = "FieldValueInvalid", ["message"] = field is null ? problem : problem[(colon + 2)..], ["field"] = field,
            });
        }
        return status;
    }

    public static JsonObject Success(string kind, string name, string? uid) => new()
    {
        ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Success",
        ["details"] = new JsonObject { ["name"] = name, ["kind"] = kind, ["uid"] = uid },
    };

    /// <summary>A refused Kraud command (or a lost race) in Kubernetes' terms; null for anything else (a bug: 500).</summary>
    public static KubeApiException? FromKraud(Exception exception, string kind, string name)
    {
        if (Gql.ErrorCodes.Map(exception) is not { } error) return null;
        return error.Code switch
        {
            "NOT_FOUND" => new KubeApiException(404, "NotFound", error.Message, kind, name),
            "VALIDATION" => KubeApiException.Invalid(kind, name, error.Message),
            "CONFLICT" when error.Message.Contains("already exists", StringComparison.Ordinal) =>
                new KubeApiException(409, "AlreadyExists", error.Message, kind, name),
            "CONFLICT" => KubeApiException.Conflict(kind, name, error.Message),
            "FORBIDDEN" => KubeApiException.Forbidden(error.Message),
            "UNAUTHENTICATED" => KubeApiException.Unauthorized(error.Message),
            "PRECONDITION" or "UNSCHEDULABLE" => KubeApiException.Invalid(kind, name, error.Message),
            _ => null,
        };
    }

    public static async Task WriteAsync(HttpContext http, KubeApiException e)
    {
        http.Response.StatusCode = e.Code;
        if (e.Code == 401) http.Response.Headers.WWWAuthenticate = "Bearer realm=\"kraud\"";
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(Of(e).ToJsonString(), http.RequestAborted);
    }
}

