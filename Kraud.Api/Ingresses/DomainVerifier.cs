using System.Net;
using System.Net.Sockets;
using System.Text;
using Kraud.Domain.Ingresses;

namespace Kraud.Api.Ingresses;

/// <summary>Proves a tenant controls a domain. The default looks for the token in a TXT record; tests replace the resolver.</summary>
public interface IDomainVerifier
{
    Task<(bool Found, string Evidence)> CheckAsync(string domain, string token, CancellationToken ct);
}

/// <summary>TXT records of a name; the default asks a DNS server over UDP, tests swap in records of their own.</summary>
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
        catch (Exception e) when (e is SocketException or TimeoutException or InvalidDataException)
        {
            return (false, $"DNS lookup of {name} failed: {e.Message}");
        }
    }
}

/// <summary>
/// A minimal DNS client (RFC 1035): one TXT question over UDP to the configured server (Network:DnsServer, host:port)
/// or the first nameserver of /etc/resolv.conf, with a timeout. Enough for a verification check; no caching.
/// </summary>
public sealed class UdpTxtResolver(IConfiguration configuration) : ITxtResolver
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    public async Task<IReadOnlyList<string>> TxtAsync(string name, CancellationToken ct)
    {
        var server = Server();
        var id = (ushort)Random.Shared.Next(ushort.MaxValue);
        using var udp = new UdpClient(server.AddressFamily);
        await udp.SendAsync(Query(id, name), server, ct);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(Timeout);
        try
        {
            while (true)
            {
                var answer = await udp.ReceiveAsync(bounded.Token);
                if (answer.Buffer.Length >= 2 && (answer.Buffer[0] << 8 | answer.Buffer[1]) == id) return Parse(answer.Buffer);
            }
        }
        catch (OperationCanceledException timedOut) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"{server} did not answer within {Timeout.TotalSeconds:F0} s.", timedOut);
        }
    }

    private IPEndPoint Server()
    {
        var configured = configuration["Network:DnsServer"];
        if (!string.IsNullOrEmpty(configured)) return IPEndPoint.Parse(configured.Contains(':') ? configured : configured + ":53");
        var line = File.Exists("/etc/resolv.conf")
            ? File.ReadLines("/etc/resolv.conf").Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("nameserver ", StringComparison.Ordinal))
            : null;
        return new IPEndPoint(line is null ? IPAddress.Loopback : IPAddress.Parse(line["nameserver ".Length..].Trim()), 53);
    }

    public static byte[] Query(ushort id, string name)
    {
        var bytes = new List<byte> { (byte)(id >> 8), (byte)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(Encoding.ASCII.GetBytes(label));
        }
        bytes.AddRange([0, 0, 16, 0, 1]); // root, QTYPE TXT, QCLASS IN
        return [.. bytes];
    }

    /// <summary>The TXT strings of every answer record (multi-string records joined, as RFC 7208 reads them).</summary>
    public static IReadOnlyList<string> Parse(byte[] message)
    {
        if (message.Length < 12) throw new InvalidDataException("DNS answer shorter than its header.");
        var rcode = message[3] & 0x0f;
        if (rcode == 3) return []; // NXDOMAIN
        if (rcode != 0) throw new InvalidDataException($"DNS server answered with RCODE {rcode}.");
        int questions = message[4] << 8 | message[5], answers = message[6] << 8 | message[7];
        var at = 12;
        for (var q = 0; q < questions; q++) at = SkipName(message, at) + 4;
        var result = new List<string>();
        for (var a = 0; a < answers; a++)
        {
            at = SkipName(message, at);
            int type = message[at] << 8 | message[at + 1], length = message[at + 8] << 8 | message[at + 9];
            at += 10;
            if (type == 16)
            {
                var text = new StringBuilder();
                for (var p = at; p < at + length;)
                {
                    var size = message[p];
                    text.Append(Encoding.UTF8.GetString(message, p + 1, size));
                    p += size + 1;
                }
                result.Add(text.ToString());
            }
            at += length;
        }
        return result;
    }

    private static int SkipName(byte[] message, int at)
    {
        while (true)
        {
            var length = message[at];
            if (length == 0) return at + 1;
            if ((length & 0xc0) == 0xc0) return at + 2;
            at += length + 1;
        }
    }
}
