using System.Net;
using System.Net.Sockets;
using DnsClient;
using Kraud.Domain.Ingresses;

namespace Kraud.Api.Ingresses;

/// <summary>Proves a tenant controls a domain. The default looks for the token in a TXT record; tests replace the resolver.</summary>
public interface IDomainVerifier
{
    Task<(bool Found, string Evidence)> CheckAsync(string domain, string token, CancellationToken ct);
}

/// <summary>TXT records of a name; the default asks a DNS server (<see cref="DnsTxtResolver"/>), tests swap in records of their own.</summary>
public interface ITxtResolver
{
    Task<IReadOnlyList<string>> TxtAsync(string name, CancellationToken ct);
}

public sealed class DnsTxtDomainVerifier(ITxtResolver resolver) : IDomainVerifier
{
    public async Task<(bool Found, string Evidence)> CheckAsync(string domain, string token, CancellationToken ct)
    {
        var name = DomainVerification.RecordName(domain);
        try
        {
            var records = await resolver.TxtAsync(name, ct);
            return records.Contains(token)
                ? (true, $"TXT {name} = \"{token}\"")
                : (false, records.Count == 0 ? $"no TXT record at {name}" : $"TXT {name} holds {string.Join(", ", records.Select(r => $"\"{r}\""))}");
        }
        catch (Exception e) when (e is SocketException or TimeoutException or InvalidDataException or DnsResponseException)
        {
            return (false, $"DNS lookup of {name} failed: {e.Message}");
        }
    }
}

/// <summary>
/// TXT records through DnsClient: the configured server (Network:DnsServer, host or host:port) or the system's
/// resolvers, three seconds per try, no cache (a verification asks for the record as it is now). A name that does not
/// exist has no records; any other error of the server is one.
/// </summary>
public sealed class DnsTxtResolver(IConfiguration configuration) : ITxtResolver
{
    private readonly LookupClient _client = Create(configuration["Network:DnsServer"]);

    public async Task<IReadOnlyList<string>> TxtAsync(string name, CancellationToken ct)
    {
        var response = await _client.QueryAsync(name, QueryType.TXT, QueryClass.IN, ct);
        if (response.HasError && response.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain)
            throw new InvalidDataException($"DNS server answered {response.ErrorMessage}.");
        // A record of several strings is one text, as RFC 7208 reads them.
        return response.Answers.TxtRecords().Select(r => string.Concat(r.Text)).ToList();
    }

    private static LookupClient Create(string? server)
    {
        var options = string.IsNullOrEmpty(server)
            ? new LookupClientOptions()
            : new LookupClientOptions(IPEndPoint.Parse(server.Contains(':', StringComparison.Ordinal) ? server : server + ":53"));
        options.UseCache = false;
        options.Timeout = TimeSpan.FromSeconds(3);
        options.Retries = 1;
        options.ThrowDnsErrors = false;
        return new LookupClient(options);
    }
}
