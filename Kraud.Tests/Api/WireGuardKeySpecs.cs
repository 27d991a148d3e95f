using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.Tests.Infrastructure;
using Npgsql;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class WireGuardKeySpecs(KraudApp app)
{
    [Fact]
    public async Task each_hosts_public_key_is_what_wg_pubkey_computes_from_the_private_key_inside_its_host_runtime()
    {
        var hosts = (await app.AsOperator("{ hosts { id name wireguardPublicKey } }")).ShouldSucceed().Data.GetProperty("hosts").EnumerateArray().ToList();
        Assert.Equal(app.Agents.All.Count, hosts.Count);
        foreach (var host in hosts)
        {
            var agent = app.Agent(host.GetProperty("id").GetString()!);
            var announced = host.GetProperty("wireguardPublicKey").GetString();
            Assert.Equal(await WgPubkeyAsync(agent.WireGuard.Keys.PrivateKey()), announced);
        }
        Assert.Equal(hosts.Count, hosts.Select(h => h.GetProperty("wireguardPublicKey").GetString()).Distinct().Count());
    }

    [Fact]
    public async Task no_private_key_appears_in_any_api_response_event_or_document()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.CreatePodAsync("keyed", replicas: 3);
        await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var privateKeys = app.Agents.All.Select(a => a.WireGuard.Keys.PrivateKey()).ToList();

        var bodies = new List<string>
        {
            (await app.AsOperator("{ hosts { id wireguardPublicKey microVms { id ip4 ip6 } } zones { id } }")).Body,
            (await app.AsOperator($"{{ vpcs {{ {Network.VpcFields} }} }}")).Body,
            (await tenant.Gql($"{{ vpcs {{ {Network.VpcFields} }} pods {{ nodes {{ {Pods.Fields} }} }} }}")).Body,
            (await app.AsOperator("{ auditLog(first: 500) { nodes { action resourceId } } }")).Body,
            (await app.AsOperator("query($id: ID!) { timeline(resourceId: $id) { type data } }", new { id = pod.Id() })).Body,
        };
        foreach (var agent in app.Agents.All) bodies.Add((await app.AsOperator(
            "query($h: ID!) { wireguardPeers(hostId: $h) { peers { publicKey endpoint allowedIps } } }", new { h = agent.Id })).Body);
        foreach (var body in bodies)
            foreach (var key in privateKeys)
                Assert.DoesNotContain(key, body);

        // Nor in anything the control plane stored: events, read models, queued messages.
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        var tables = new List<(string Schema, string Table)>();
        await using (var list = new NpgsqlCommand(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')",
            connection))
        await using (var reader = await list.ExecuteReaderAsync())
            while (await reader.ReadAsync()) tables.Add((reader.GetString(0), reader.GetString(1)));
        Assert.Contains(tables, t => t.Table == "mt_events");
        foreach (var (schema, table) in tables)
            foreach (var key in privateKeys)
            {
                Assert.True(await connection.ScalarAsync($"select count(*) from \"{schema}\".\"{table}\" t where position($1 in t::text) > 0", key) == 0,
                    $"a private key is stored in {schema}.{table}");
            }
        await tenant.DeletePodsAsync();
    }

    /// <summary>wireguard-tools' own derivation; .ci/run installs the package, and a machine without it fails here with the reason.</summary>
    private static async Task<string> WgPubkeyAsync(string privateKey)
    {
        if (!File.Exists("/usr/bin/wg") && !(Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "wg"))))
            throw new InvalidOperationException("wg is missing: apt-get install wireguard-tools (or run .ci/run).");
        var result = await ProcessRunner.RunAsync("wg", ["pubkey"], TimeSpan.FromSeconds(30), CancellationToken.None, stdin: privateKey + "\n");
        Assert.True(result.ExitCode == 0, $"wg pubkey failed: {result.Error}");
        return result.Output.Trim();
    }
}
