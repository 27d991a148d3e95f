namespace Kraud.Api.Common;

/// <summary>
/// An address or prefix held by one owner: a tenant's /48, a namespace's /23, a microVM's IPv4 address (its IPv6
/// address follows from it). The id is the address, so the database's primary key makes a double lease impossible:
/// two transactions that pick the same free address cannot both commit, and the loser is retried on fresh state.
/// </summary>
public sealed class AddressClaim : IContendedClaim
{
    public string Id { get; set; } = "";
    public Guid OwnerId { get; set; }

    /// <summary>The /23 an IPv4 lease belongs to (empty for prefixes), to read a namespace's leases at once.</summary>
    public string Pool { get; set; } = "";

    public int Offset { get; set; }

    public static string Ula(string prefix) => "ula:" + prefix;
    public static string Block(string cidr) => "v4block:" + cidr;
    public static string Lease(string ip4) => "ip4:" + ip4;
    public static string Public(string address) => "public:" + address;
}
