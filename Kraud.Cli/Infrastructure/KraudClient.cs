using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Kraud.Cli.Infrastructure;

/// <summary>
/// The one client of Kraud's API: GraphQL operations (documents declared as <see cref="Operation{T}"/>) and the REST
/// downloads. Errors in the answer become <see cref="KraudApiException"/> with the contract's code.
/// </summary>
public sealed class KraudClient : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http;

    public Uri BaseUrl { get; }

    public KraudClient(CliContext context)
    {
        if (!Uri.TryCreate(context.Url.TrimEnd('/') + "/", UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            throw new CliException($"'{context.Url}' is not an http(s) URL.");
        BaseUrl = url;
        // Waits on long work are loops of short calls; one call never takes minutes.
        _http = new HttpClient { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", context.Token);
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("kraud-cli/1");
    }

    public static KraudClient FromConfig() => new(CliConfig.Load().Resolve());

    public async Task<T> RunAsync<T>(Operation<T> operation, object? variables, CancellationToken ct) =>
        (await AnswerAsync(operation, variables, ct)).Value;

    /// <summary>
    /// The operation's value with the rest of the answer: the document's other fields and the response's extensions, where
    /// the API puts what a list field cannot hold (a timeline that answers from the archive boundary on says so there).
    /// </summary>
    public async Task<GqlAnswer<T>> AnswerAsync<T>(Operation<T> operation, object? variables, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "graphql")
        {
            Content = JsonContent.Create(new { query = operation.Document, variables }, options: Json),
        };
        request.Headers.Accept.ParseAdd("application/graphql-response+json");
        request.Headers.Accept.ParseAdd("application/json");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(100));
        using var response = await SendAsync(request, timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(body).RootElement;
        }
        catch (JsonException)
        {
            throw new KraudApiException($"HTTP_{(int)response.StatusCode}", $"{BaseUrl} did not answer with GraphQL: {Shorten(body)}");
        }
        ThrowOnErrors(root);
        if (!response.IsSuccessStatusCode)
            throw new KraudApiException($"HTTP_{(int)response.StatusCode}", Shorten(body));
        var data = root.GetProperty("data").Clone();
        var extensions = root.TryGetProperty("extensions", out var e) ? e.Clone() : default;
        return new GqlAnswer<T>(data.GetProperty(operation.Field).Deserialize<T>(Json)!, data, extensions);
    }

    /// <summary>A REST resource (exports, the audit key); an error answer is read as Kraud's error body when it is one.</summary>
    public async Task<HttpResponseMessage> GetAsync(string relative, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, relative);
        var response = await SendAsync(request, ct, HttpCompletionOption.ResponseHeadersRead);
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            try
            {
                var root = JsonDocument.Parse(body).RootElement;
                ThrowOnErrors(root);
                // REST resources answer a refusal as {"error": CODE, "message": …}.
                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var code) && code.ValueKind == JsonValueKind.String
                    && root.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
                    throw new KraudApiException(code.GetString()!, message.GetString()!);
            }
            catch (JsonException)
            {
                // Not a JSON error body: the status says enough.
            }
            throw new KraudApiException(response.StatusCode switch
            {
                System.Net.HttpStatusCode.Unauthorized => "UNAUTHENTICATED",
                System.Net.HttpStatusCode.Forbidden => "FORBIDDEN",
                System.Net.HttpStatusCode.NotFound => "NOT_FOUND",
                System.Net.HttpStatusCode.BadRequest => "VALIDATION",
                _ => $"HTTP_{(int)response.StatusCode}",
            }, $"GET {relative}: {Shorten(body)}");
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        try
        {
            return await _http.SendAsync(request, completion, ct);
        }
        catch (HttpRequestException e)
        {
            throw new KraudApiException("UNREACHABLE", $"cannot reach Kraud at {BaseUrl}: {e.Message}");
        }
    }

    private static void ThrowOnErrors(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("errors", out var errors) || errors.ValueKind != JsonValueKind.Array
            || errors.GetArrayLength() == 0)
            return;
        var first = errors[0];
        var code = first.TryGetProperty("extensions", out var ext) && ext.TryGetProperty("code", out var c) ? c.GetString() ?? "ERROR" : "ERROR";
        var messages = errors.EnumerateArray().Select(e => e.TryGetProperty("message", out var m) ? m.GetString() : null).OfType<string>();
        throw new KraudApiException(code, string.Join("; ", messages));
    }

    private static string Shorten(string body) => body.Length <= 300 ? body.Trim() : body[..300].Trim() + "…";

    public void Dispose() => _http.Dispose();
}

/// <summary>An operation's value, the whole <c>data</c> of its answer, and the response's <c>extensions</c> (undefined when absent).</summary>
public sealed record GqlAnswer<T>(T Value, JsonElement Data, JsonElement Extensions);
