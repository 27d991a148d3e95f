using k8s;
using k8s.Models;
using Kraud.Domain.Common;

namespace Kraud.Api.KubernetesApi;

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
    public static V1Status Of(KubeApiException e) => new()
    {
        ApiVersion = "v1", Kind = "Status", Status = "Failure", Message = e.Message, Reason = e.Reason, Code = e.Code,
        Details = e.Name is null ? null : new V1StatusDetails { Name = e.Name, Kind = e.Kind },
        Metadata = new V1ListMeta(),
    };

    public static V1Status Success(string kind, string name, string? uid) => new()
    {
        ApiVersion = "v1", Kind = "Status", Status = "Success", Details = new V1StatusDetails { Name = name, Kind = kind, Uid = uid }, Metadata = new V1ListMeta(),
    };

    /// <summary>A refused Kraud command (or a lost race) in Kubernetes' terms; null for anything else (a bug: 500).</summary>
    public static KubeApiException? FromKraud(Exception exception, string kind, string name)
    {
        if (Configuration.ErrorCodes.Map(exception) is not { } error) return null;
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
        await http.Response.WriteAsync(KubernetesJson.Serialize(Of(e)), http.RequestAborted);
    }
}

