using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GraphQL;
using JasperFx;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Marten;

namespace Kraud.Api.Idempotency;

/// <summary>
/// A GraphQL mutation sent with an Idempotency-Key header runs once per key: a retry with the same key and the same body
/// within 24 hours gets the first attempt's answer (status and body, marked Idempotent-Replayed) and appends nothing; the
/// same key with another body is refused with CONFLICT. Keys belong to a tenant (or to the operator).
/// </summary>
/// <remarks>
/// The attempt that claims a key holds a lease on it and renews it while it runs, so that two nodes never run the same key
/// at once, and a retry that reaches another node while the first is still working waits for its answer. When the node
/// running it died, the lease runs out and a retry takes the key over: it runs the mutation again with the ids the key
/// derives (<see cref="RequestIds"/>), so what the first attempt created is found, not made twice.
/// </remarks>
public sealed class IdempotentMutations(IDocumentStore store, TokenAuthenticator authenticator, TimeProvider time, IGraphQLTextSerializer serializer,
    ILogger<IdempotentMutations> logger)
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    public const int MaxKeyLength = 255;
    public static readonly TimeSpan Retention = TimeSpan.FromHours(24);
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(10);

    /// <summary>How long a retry waits for an attempt that is still running before it answers CONFLICT.</summary>
    private static readonly TimeSpan WaitForRunning = TimeSpan.FromSeconds(15);

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    public async Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        if (!HttpMethods.IsPost(http.Request.Method) || http.Request.Path != GraphQLEndpoint.Path
            || !http.Request.Headers.TryGetValue(Header, out var values))
        {
            await next(http);
            return;
        }
        var key = values.ToString();
        if (key.Length is 0 or > MaxKeyLength || !key.All(c => c is >= '!' and <= '~'))
        {
            await GraphQLEndpoint.WriteErrorAsync(http, serializer, StatusCodes.Status400BadRequest, "VALIDATION",
                $"{Header} must be 1 to {MaxKeyLength} visible ASCII characters (a UUID is a good key).");
            return;
        }
        var principal = await authenticator.AuthenticateAsync(http);
        var body = await BufferAsync(http.Request);
        if (principal is null || !IsMutation(body))
        {
            // The endpoint answers for a missing token or an unreadable body; a query is idempotent without a key.
            await next(http);
            return;
        }

        var scope = principal.TenantId?.ToString() ?? $"operator:{principal.TokenId}";
        // The key itself is not stored: it seals the answer, which may hold a secret (createApiToken's token).
        var id = $"{scope}/{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))}";
        var sha = Convert.ToHexStringLower(SHA256.HashData(body));
        var holder = Guid.NewGuid().ToString("N");
        var claim = await ClaimAsync(id, scope, sha, holder);
        switch (claim)
        {
            case Claim.Mismatch:
                await GraphQLEndpoint.WriteErrorAsync(http, serializer, StatusCodes.Status409Conflict, "CONFLICT",
                    $"{Header} '{key}' was used for another request; use a new key for a new request.");
                return;
            case Claim.Busy:
                await GraphQLEndpoint.WriteErrorAsync(http, serializer, StatusCodes.Status409Conflict, "CONFLICT",
                    $"The request with {Header} '{key}' is still running; retry it later with the same key.");
                return;
            case Claim.Answered answered:
                http.Response.StatusCode = answered.Record.Status!.Value;
                http.Response.ContentType = answered.Record.ContentType;
                http.Response.Headers[ReplayedHeader] = "true";
                await http.Response.Body.WriteAsync(Open(answered.Record.Body!, key, scope));
                return;
        }

        RequestIds.Seed(http, id);
        // Once claimed, the mutation runs to its end even if the client goes away: its answer is what the retry gets.
        http.RequestAborted = CancellationToken.None;
        var original = http.Response.Body;
        using var answer = new MemoryStream();
        http.Response.Body = answer;
        using var renewal = new CancellationTokenSource();
        var renewing = RenewAsync(id, holder, renewal.Token);
        try
        {
            await next(http);
        }
        catch
        {
            await renewal.CancelAsync();
            await renewing;
            await ReleaseAsync(id, holder);
            throw;
        }
        finally
        {
            http.Response.Body = original;
        }
        await renewal.CancelAsync();
        await renewing;
        await AnswerAsync(id, holder, http.Response.StatusCode, http.Response.ContentType, Seal(answer.ToArray(), key, scope));
        answer.Position = 0;
        await answer.CopyToAsync(original);
    }

    private abstract record Claim
    {
        public sealed record Mine : Claim;

        public sealed record Mismatch : Claim;

        public sealed record Busy : Claim;

        public sealed record Answered(IdempotencyRecord Record) : Claim;
    }

    private async Task<Claim> ClaimAsync(string id, string scope, string sha, string holder)
    {
        var giveUpAt = time.GetUtcNow() + WaitForRunning;
        while (true)
        {
            var now = time.GetUtcNow();
            await using var session = store.LightweightSession();
            var existing = await session.LoadAsync<IdempotencyRecord>(id);
            try
            {
                if (existing is null || existing.ExpiresAt <= now)
                {
                    var record = new IdempotencyRecord
                    {
                        Id = id, Scope = scope, RequestSha256 = sha, CreatedAt = now, ExpiresAt = now + Retention, LeaseUntil = now + Lease, Holder = holder,
                    };
                    if (existing is null) session.Insert(record);
                    else session.Store(record);
                    // The scope's forgotten keys go with each new one, so the table holds about a day of keys.
                    session.DeleteWhere<IdempotencyRecord>(r => r.Scope == scope && r.ExpiresAt < now && r.Id != id);
                    await session.SaveChangesAsync();
                    return new Claim.Mine();
                }
                if (existing.RequestSha256 != sha) return new Claim.Mismatch();
                if (existing.Answered) return new Claim.Answered(existing);
                if (existing.LeaseUntil <= now)
                {
                    logger.LogWarning("Idempotency key {Key}: the attempt holding it stopped renewing its lease; this one runs the request again", id);
                    existing.Holder = holder;
                    existing.LeaseUntil = now + Lease;
                    session.Store(existing);
                    await session.SaveChangesAsync();
                    return new Claim.Mine();
                }
            }
            catch (Exception e) when (e is DocumentAlreadyExistsException or ConcurrencyException)
            {
                continue; // another attempt claimed or took it over first: look again
            }
            if (now >= giveUpAt) return new Claim.Busy();
            await Task.Delay(Poll, time);
        }
    }

    private async Task RenewAsync(string id, string holder, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(Lease / 3, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                await using var session = store.LightweightSession();
                var record = await session.LoadAsync<IdempotencyRecord>(id, stop);
                if (record is null || record.Holder != holder || record.Answered) return;
                record.LeaseUntil = time.GetUtcNow() + Lease;
                session.Store(record);
                await session.SaveChangesAsync(stop);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ConcurrencyException)
        {
            // Taken over (this attempt was too slow to renew): the other attempt answers; this one still finishes its own.
        }
    }

    /// <summary>The first answer stays: an attempt that lost its lease and finished late does not replace it.</summary>
    private async Task AnswerAsync(string id, string holder, int status, string? contentType, string body)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            await using var session = store.LightweightSession();
            var record = await session.LoadAsync<IdempotencyRecord>(id);
            if (record is null || record.Answered) return;
            if (record.Holder != holder) logger.LogWarning("Idempotency key {Key}: answered by an attempt that had lost its lease", id);
            record.Status = status;
            record.ContentType = contentType;
            record.Body = body;
            session.Store(record);
            try
            {
                await session.SaveChangesAsync();
                return;
            }
            catch (ConcurrencyException)
            {
            }
        }
    }

    /// <summary>An attempt that failed without an answer lets go at once, so that a retry need not wait for the lease.</summary>
    private async Task ReleaseAsync(string id, string holder)
    {
        await using var session = store.LightweightSession();
        var record = await session.LoadAsync<IdempotencyRecord>(id);
        if (record is null || record.Holder != holder || record.Answered) return;
        record.LeaseUntil = DateTimeOffset.MinValue;
        session.Store(record);
        try
        {
            await session.SaveChangesAsync();
        }
        catch (ConcurrencyException)
        {
        }
    }

    /// <summary>AES-GCM under a key only the client holds (derived from its Idempotency-Key): a database reader learns no answer.</summary>
    private static string Seal(byte[] answer, string key, string scope) => Convert.ToBase64String(Aead.Seal(AnswerKey(key, scope), answer, []));

    private static byte[] Open(string sealedAnswer, string key, string scope) => Aead.Open(AnswerKey(key, scope), Convert.FromBase64String(sealedAnswer), []);

    private static byte[] AnswerKey(string key, string scope) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(key), 32, Encoding.UTF8.GetBytes(scope), "kraud idempotent answer"u8.ToArray());

    private static async Task<byte[]> BufferAsync(HttpRequest request)
    {
        request.EnableBuffering();
        using var copy = new MemoryStream();
        await request.Body.CopyToAsync(copy, request.HttpContext.RequestAborted);
        request.Body.Position = 0;
        return copy.ToArray();
    }

    private static bool IsMutation(byte[] body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind != JsonValueKind.Object
                || !json.RootElement.TryGetProperty("query", out var query) || query.ValueKind != JsonValueKind.String) return false;
            var operation = json.RootElement.TryGetProperty("operationName", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null;
            return GraphQLEndpoint.IsMutation(query.GetString()!, operation);
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
