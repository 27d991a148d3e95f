using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Authentication;
using System.Text;
using System.Text.Json;

namespace Kraud.HostRuntime.Images;

public enum RegistryFailure
{
    /// <summary>The registry answered: no such repository, tag or blob.</summary>
    NotFound,

    /// <summary>The registry wants credentials, or refused the ones given.</summary>
    Unauthorized,

    /// <summary>No answer (connection, DNS, TLS, timeout) or a server error: nothing is known about the image.</summary>
    Unreachable,

    /// <summary>The registry answered with something Kraud cannot use (bad digest, unsupported manifest, wrong platform).</summary>
    Invalid,
}

public sealed class RegistryException(RegistryFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public RegistryFailure Failure { get; } = failure;
}

/// <summary>A registry login. ToString never shows the password (these end up in log scopes and exception texts otherwise).</summary>
public sealed record RegistryAuth(string Username, string Password)
{
    public override string ToString() => $"{Username}:***";
}

/// <summary>
/// A client of the OCI Distribution API (the registry HTTP API v2): manifests and blobs by digest, HTTP Basic and the
/// Bearer token flow of the Distribution token spec (401 with a WWW-Authenticate challenge, a token from the realm with
/// the credentials as Basic, the request again with the token), mirrors and insecure registries as configured, and the
/// few writes a registry needs to receive an image (used to seed registries Kraud starts itself).
/// </summary>
public sealed partial class DistributionClient : IDisposable
{
    private const int MaxManifestBytes = 4 * 1024 * 1024;
    private readonly RegistryOptions _options;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<string, (string Token, DateTimeOffset Expires)> _tokens = new();

    public DistributionClient(RegistryOptions options, HttpMessageHandler? handler = null)
    {
        _options = options;
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // redirects to blob storage must not carry the registry's Authorization
            ConnectTimeout = TimeSpan.FromSeconds(options.TimeoutSeconds),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("kraud", "1"));
    }

    public RegistryOptions Options => _options;

    /// <summary>A manifest or index by tag or digest, its bytes checked against the digest asked for or announced.</summary>
    public Task<ManifestDocument> GetManifestAsync(string registry, string repository, string reference, RegistryAuth? auth, CancellationToken ct) =>
        OnEndpointsAsync(registry, endpoint => Timed(endpoint.BaseUri.Authority, ct, async token =>
        {
            using var response = await SendAsync(endpoint, HttpMethod.Get, $"v2/{repository}/manifests/{reference}", Pull(repository), auth,
                r => { foreach (var type in MediaTypes.Accepted) r.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type)); }, null, token);
            await EnsureSuccessAsync(response, $"{registry}/{repository}:{reference}", token);
            var bytes = await ReadBoundedAsync(await response.Content.ReadAsStreamAsync(token), MaxManifestBytes, token);
            var digest = Digests.Of(bytes);
            if (reference.StartsWith("sha256:", StringComparison.Ordinal) && reference != digest)
                throw new RegistryException(RegistryFailure.Invalid, $"{endpoint.BaseUri.Authority} served {registry}/{repository}@{reference} with the digest {digest}");
            if (response.Headers.TryGetValues("Docker-Content-Digest", out var announced) && announced.FirstOrDefault() is { } said
                && said.StartsWith("sha256:", StringComparison.Ordinal) && said != digest)
                throw new RegistryException(RegistryFailure.Invalid, $"{endpoint.BaseUri.Authority} announced {said} for {registry}/{repository}:{reference} but sent {digest}");
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            if (mediaType is null || !MediaTypes.Accepted.Contains(mediaType)) mediaType = ManifestDocument.DeclaredMediaType(bytes) ?? mediaType ?? "";
            if (!MediaTypes.IsIndex(mediaType) && !MediaTypes.IsManifest(mediaType))
                throw new RegistryException(RegistryFailure.Invalid,
                    $"{registry}/{repository}:{reference} is a {mediaType} manifest; Kraud reads OCI and Docker v2 schema 2 images only");
            return new ManifestDocument(mediaType, digest, bytes);
        }));

    /// <summary>
    /// A blob's content as the registry streams it. The caller checks the digest while it reads: nothing here has verified it yet.
    /// </summary>
    public Task<BlobResponse> OpenBlobAsync(string registry, string repository, string digest, RegistryAuth? auth, CancellationToken ct) =>
        OnEndpointsAsync(registry, async endpoint =>
        {
            HttpResponseMessage? response = null;
            try
            {
                // Only the answer's headers are timed: a big layer takes as long as it takes.
                response = await Timed(endpoint.BaseUri.Authority, ct, token =>
                    SendAsync(endpoint, HttpMethod.Get, $"v2/{repository}/blobs/{digest}", Pull(repository), auth, null, null, token));
                await EnsureSuccessAsync(response, $"blob {digest} of {registry}/{repository}", ct);
                return new BlobResponse(response, await response.Content.ReadAsStreamAsync(ct), response.Content.Headers.ContentLength);
            }
            catch
            {
                response?.Dispose();
                throw;
            }
        });

    /// <summary>A small blob (an image config) read whole and checked against its digest.</summary>
    public async Task<byte[]> GetBlobBytesAsync(string registry, string repository, Descriptor blob, RegistryAuth? auth, CancellationToken ct)
    {
        if (blob.Size > MaxManifestBytes) throw new RegistryException(RegistryFailure.Invalid, $"blob {blob.Digest} is {blob.Size} bytes, too big for a config");
        using var response = await OpenBlobAsync(registry, repository, blob.Digest, auth, ct);
        var bytes = await Timed(registry, ct, token => ReadBoundedAsync(response.Content, MaxManifestBytes, token));
        if (Digests.Of(bytes) != blob.Digest)
            throw new RegistryException(RegistryFailure.Invalid, $"blob {blob.Digest} of {registry}/{repository} arrived with the digest {Digests.Of(bytes)}");
        return bytes;
    }

    /// <summary>
    /// What `docker login` checks: the registry's base endpoint answers with these credentials (HTTP Basic, or a token the
    /// realm issued for them).
    /// </summary>
    public async Task CheckCredentialsAsync(string registry, RegistryAuth auth, CancellationToken ct)
    {
        var endpoint = new RegistryEndpoint(_options.EndpointOf(registry), Mirror: false);
        await Timed(registry, ct, async token =>
        {
            using var response = await SendAsync(endpoint, HttpMethod.Get, "v2/", scope: null, auth, null, null, token, login: true);
            await EnsureSuccessAsync(response, $"registry {registry}", token);
        });
    }

    public async Task<bool> BlobExistsAsync(string registry, string repository, string digest, RegistryAuth? auth, CancellationToken ct)
    {
        var endpoint = new RegistryEndpoint(_options.EndpointOf(registry), Mirror: false);
        return await Timed(registry, ct, async token =>
        {
            using var response = await SendAsync(endpoint, HttpMethod.Head, $"v2/{repository}/blobs/{digest}", Push(repository), auth, null, null, token);
            if (response.StatusCode == HttpStatusCode.NotFound) return false;
            await EnsureSuccessAsync(response, $"blob {digest} of {registry}/{repository}", token);
            return true;
        });
    }

    /// <summary>Uploads a blob in one request (POST for an upload session, then a monolithic PUT with the digest).</summary>
    public async Task PushBlobAsync(string registry, string repository, byte[] blob, RegistryAuth? auth, CancellationToken ct)
    {
        var digest = Digests.Of(blob);
        if (await BlobExistsAsync(registry, repository, digest, auth, ct)) return;
        var endpoint = new RegistryEndpoint(_options.EndpointOf(registry), Mirror: false);
        await Timed(registry, ct, async token =>
        {
            Uri location;
            using (var started = await SendAsync(endpoint, HttpMethod.Post, $"v2/{repository}/blobs/uploads/", Push(repository), auth, null, null, token))
            {
                await EnsureSuccessAsync(started, $"an upload to {registry}/{repository}", token);
                location = started.Headers.Location ?? throw new RegistryException(RegistryFailure.Invalid, $"{registry} started an upload without a Location");
            }
            if (!location.IsAbsoluteUri) location = new Uri(endpoint.BaseUri, location);
            var put = new UriBuilder(location);
            put.Query = (string.IsNullOrEmpty(put.Query) ? "" : put.Query.TrimStart('?') + "&") + "digest=" + Uri.EscapeDataString(digest);
            using var response = await SendAsync(endpoint, HttpMethod.Put, put.Uri.PathAndQuery.TrimStart('/'), Push(repository), auth, null,
                () => new ByteArrayContent(blob) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } }, token);
            await EnsureSuccessAsync(response, $"blob {digest} to {registry}/{repository}", token);
        });
    }

    public async Task PushManifestAsync(string registry, string repository, string reference, string mediaType, byte[] manifest, RegistryAuth? auth,
        CancellationToken ct)
    {
        var endpoint = new RegistryEndpoint(_options.EndpointOf(registry), Mirror: false);
        await Timed(registry, ct, async token =>
        {
            using var response = await SendAsync(endpoint, HttpMethod.Put, $"v2/{repository}/manifests/{reference}", Push(repository), auth, null,
                () => new ByteArrayContent(manifest) { Headers = { ContentType = new MediaTypeHeaderValue(mediaType) } }, token);
            await EnsureSuccessAsync(response, $"manifest {registry}/{repository}:{reference}", token);
        });
    }

    private static string Pull(string repository) => $"repository:{repository}:pull";

    private static string Push(string repository) => $"repository:{repository}:pull,push";

    /// <summary>Runs a request with the configured time limit; running out of it is an unreachable registry, not a cancellation.</summary>
    private async Task<T> Timed<T>(string registry, CancellationToken ct, Func<CancellationToken, Task<T>> body)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromSeconds(_options.TimeoutSeconds));
        try
        {
            return await body(cts.Token);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new RegistryException(RegistryFailure.Unreachable, $"{registry} did not answer within {_options.TimeoutSeconds} s", e);
        }
    }

    private Task Timed(string registry, CancellationToken ct, Func<CancellationToken, Task> body) =>
        Timed(registry, ct, async token =>
        {
            await body(token);
            return true;
        });

    /// <summary>Mirrors first; the next endpoint only when one is unreachable (a mirror's definite answer is the answer).</summary>
    private async Task<T> OnEndpointsAsync<T>(string registry, Func<RegistryEndpoint, Task<T>> action)
    {
        RegistryException? unreachable = null;
        foreach (var endpoint in _options.EndpointsOf(registry))
        {
            try
            {
                return await action(endpoint);
            }
            catch (RegistryException e) when (e.Failure == RegistryFailure.Unreachable)
            {
                unreachable = unreachable is null ? e : new RegistryException(RegistryFailure.Unreachable, $"{unreachable.Message}; {e.Message}", e);
            }
        }
        throw unreachable!;
    }

    /// <summary>
    /// Sends with what the registry asks for: nothing first (or a token cached for this scope), then on a 401 HTTP Basic or a
    /// Bearer token fetched from the challenge's realm. Mirrors never see the credentials. Redirects (blob storage) are
    /// followed without the registry's Authorization when they leave its host.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(RegistryEndpoint endpoint, HttpMethod method, string path, string? scope, RegistryAuth? auth,
        Action<HttpRequestMessage>? configure, Func<HttpContent>? content, CancellationToken ct, bool login = false)
    {
        if (endpoint.Mirror) auth = null;
        var tokenKey = $"{endpoint.BaseUri}|{scope}|{auth?.Username}";
        string? token = _tokens.TryGetValue(tokenKey, out var cached) && cached.Expires > DateTimeOffset.UtcNow ? cached.Token : null;
        var basic = false;
        for (var attempt = 0; ; attempt++)
        {
            var request = new HttpRequestMessage(method, new Uri(endpoint.BaseUri, path));
            configure?.Invoke(request);
            if (content is not null) request.Content = content();
            if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            else if (basic && auth is not null) request.Headers.Authorization = BasicOf(auth);
            var response = await FollowAsync(request, ct);
            if (response.StatusCode != HttpStatusCode.Unauthorized) return response;

            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            response.Dispose();
            var who = endpoint.Mirror ? $"mirror {endpoint.BaseUri.Authority}" : $"registry {endpoint.BaseUri.Authority}";
            if (attempt > 0 || challenge is null)
                throw new RegistryException(RegistryFailure.Unauthorized, auth is null
                    ? $"{who} requires credentials"
                    : $"{who} refused the credentials of user '{auth.Username}'");
            if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
            {
                if (auth is null) throw new RegistryException(RegistryFailure.Unauthorized, $"{who} requires credentials");
                basic = true;
            }
            else if (challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            {
                var parameters = ChallengeParameters(challenge.Parameter ?? "");
                var tokenScope = login ? null : scope ?? parameters.GetValueOrDefault("scope");
                var (issued, expires) = await FetchTokenAsync(endpoint, parameters, tokenScope, auth, who, ct);
                token = issued;
                _tokens[tokenKey] = (issued, expires);
            }
            else
            {
                throw new RegistryException(RegistryFailure.Unauthorized, $"{who} asks for {challenge.Scheme} authentication, which Kraud does not speak");
            }
        }
    }

    private async Task<HttpResponseMessage> FollowAsync(HttpRequestMessage request, CancellationToken ct)
    {
        var origin = request.RequestUri!;
        for (var hops = 0; ; hops++)
        {
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            }
            catch (HttpRequestException e)
            {
                throw new RegistryException(RegistryFailure.Unreachable, $"{origin.Authority} cannot be reached ({Describe(e, origin)})", e);
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested || e.InnerException is TimeoutException)
            {
                throw new RegistryException(RegistryFailure.Unreachable, $"{origin.Authority} did not answer in time", e);
            }
            var status = (int)response.StatusCode;
            if (status is < 300 or > 399 || request.Method != HttpMethod.Get || response.Headers.Location is not { } location) return response;
            response.Dispose();
            if (hops >= 5) throw new RegistryException(RegistryFailure.Invalid, $"{origin.Authority} redirected more than 5 times");
            var next = location.IsAbsoluteUri ? location : new Uri(request.RequestUri!, location);
            var redirected = new HttpRequestMessage(HttpMethod.Get, next);
            foreach (var accept in request.Headers.Accept) redirected.Headers.Accept.Add(accept);
            if (next.Authority == request.RequestUri!.Authority && next.Scheme == request.RequestUri.Scheme)
                redirected.Headers.Authorization = request.Headers.Authorization;
            request = redirected;
        }
    }

    private static string Describe(HttpRequestException e, Uri uri)
    {
        if (e.InnerException is AuthenticationException)
            return $"TLS handshake failed: {e.InnerException.Message}; a registry that serves plain HTTP must be listed in Images:InsecureRegistries";
        return e.InnerException?.Message ?? e.Message;
    }

    private async Task<(string Token, DateTimeOffset Expires)> FetchTokenAsync(RegistryEndpoint endpoint, IReadOnlyDictionary<string, string> challenge,
        string? scope, RegistryAuth? auth, string who, CancellationToken ct)
    {
        if (!challenge.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri))
            throw new RegistryException(RegistryFailure.Invalid, $"{who} asks for a Bearer token without a usable realm");
        if (realmUri.Scheme != "https" && !(realmUri.Scheme == "http" && _options.IsInsecure(realmUri.Authority)))
            throw new RegistryException(RegistryFailure.Invalid,
                $"{who} sends credentials to the token realm {realm} over plain HTTP, and {realmUri.Authority} is not in Images:InsecureRegistries");
        var query = new List<string>();
        if (challenge.TryGetValue("service", out var service)) query.Add("service=" + Uri.EscapeDataString(service));
        if (scope is not null) query.Add("scope=" + Uri.EscapeDataString(scope));
        if (auth is not null) query.Add("account=" + Uri.EscapeDataString(auth.Username));
        var uri = new UriBuilder(realmUri) { Query = string.Join('&', query) }.Uri;
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (auth is not null) request.Headers.Authorization = BasicOf(auth);
        using var response = await FollowAsync(request, ct);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            throw new RegistryException(RegistryFailure.Unauthorized, auth is null
                ? $"{who} requires credentials (its token service {realmUri.Authority} refused an anonymous token)"
                : $"{who} refused the credentials of user '{auth.Username}' (token service {realmUri.Authority})");
        await EnsureSuccessAsync(response, $"a token from {realmUri.Authority}", ct);
        using var json = JsonDocument.Parse(await ReadBoundedAsync(await response.Content.ReadAsStreamAsync(ct), 1024 * 1024, ct));
        var root = json.RootElement;
        var token = (root.TryGetProperty("token", out var t) ? t.GetString() : null)
                    ?? (root.TryGetProperty("access_token", out var a) ? a.GetString() : null)
                    ?? throw new RegistryException(RegistryFailure.Invalid, $"the token service {realmUri.Authority} answered without a token");
        var lifetime = root.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var seconds) && seconds > 0 ? seconds : 60;
        // Renewed a little early: a token that expires on its way is a failed pull.
        return (token, DateTimeOffset.UtcNow.AddSeconds(Math.Max(1, lifetime - 10)));
    }

    private static AuthenticationHeaderValue BasicOf(RegistryAuth auth) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{auth.Username}:{auth.Password}")));

    /// <summary>The key="value" pairs of a WWW-Authenticate challenge (values may hold commas inside their quotes).</summary>
    internal static IReadOnlyDictionary<string, string> ChallengeParameters(string parameter)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (System.Text.RegularExpressions.Match m in ChallengePair().Matches(parameter))
            result[m.Groups["key"].Value] = m.Groups["quoted"].Success ? m.Groups["quoted"].Value.Replace("\\\"", "\"", StringComparison.Ordinal) : m.Groups["bare"].Value;
        return result;
    }

    [System.Text.RegularExpressions.GeneratedRegex("""(?<key>[A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"(?<quoted>(?:[^"\\]|\\.)*)"|(?<bare>[^,\s]*))""",
        System.Text.RegularExpressions.RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial System.Text.RegularExpressions.Regex ChallengePair();

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var status = (int)response.StatusCode;
        var detail = await ErrorTextAsync(response, ct);
        var authority = response.RequestMessage?.RequestUri?.Authority ?? "the registry";
        throw status switch
        {
            404 => new RegistryException(RegistryFailure.NotFound, $"{authority} has no {what}{detail}"),
            401 or 403 => new RegistryException(RegistryFailure.Unauthorized, $"{authority} refused access to {what}{detail}"),
            429 or >= 500 => new RegistryException(RegistryFailure.Unreachable, $"{authority} answered {status} for {what}{detail}"),
            _ => new RegistryException(RegistryFailure.Invalid, $"{authority} answered {status} for {what}{detail}"),
        };
    }

    /// <summary>The registry's own words (the Distribution spec's error codes), short.</summary>
    private static async Task<string> ErrorTextAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            var text = Encoding.UTF8.GetString(await ReadBoundedAsync(await response.Content.ReadAsStreamAsync(ct), 64 * 1024, ct));
            using var json = JsonDocument.Parse(text);
            var errors = json.RootElement.GetProperty("errors").EnumerateArray()
                .Select(e => $"{e.GetProperty("code").GetString()}: {e.GetProperty("message").GetString()}").ToList();
            return errors.Count == 0 ? "" : $" ({string.Join("; ", errors)})";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException or HttpRequestException
                                      or RegistryException)
        {
            return "";
        }
    }

    private static async Task<byte[]> ReadBoundedAsync(Stream stream, int max, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > max) throw new RegistryException(RegistryFailure.Invalid, $"the registry sent more than {max} bytes where a small document was expected");
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>An open blob download; dispose it when read.</summary>
public sealed class BlobResponse(HttpResponseMessage response, Stream content, long? length) : IDisposable
{
    public HttpResponseMessage Response => response;
    public Stream Content => content;
    public long? Length => length;

    public void Dispose()
    {
        content.Dispose();
        response.Dispose();
    }
}
