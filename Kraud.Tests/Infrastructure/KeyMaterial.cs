using Alba;
using Kraud.HostRuntime.Agents;
using Kraud.HostRuntime.Drivers;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// Every key the in-process host runtimes hold at this moment (the fleet's key-encryption key, volume data keys on
/// storage hosts, ephemeral and volume keys of running microVMs), in every form it could leak in. The GraphQL client
/// checks each response of every test against it: no response may ever carry key material.
/// </summary>
public static class KeyMaterial
{
    public static IReadOnlyList<string> HeldBy(IAlbaHost host)
    {
        if (host.Services.GetService<HostAgents>() is not { All.Count: > 0 } agents) return [];
        var keys = new List<byte[]> { agents.All.First().Kek.ExportForTests() };
        foreach (var agent in agents.All)
        {
            keys.AddRange(agent.Replicas.DataKeysForTests());
            if (agent.Driver is SimulatedDriver simulated) keys.AddRange(simulated.KeysForTests());
        }
        return keys.SelectMany(Forms).Distinct().ToList();
    }

    public static IEnumerable<string> Forms(byte[] key) =>
        [Convert.ToBase64String(key), Convert.ToBase64String(key).TrimEnd('='), Convert.ToHexString(key), Convert.ToHexStringLower(key)];

    public static void AssertAbsent(IAlbaHost host, string body)
    {
        foreach (var secret in HeldBy(host))
            Assert.False(body.Contains(secret, StringComparison.Ordinal), $"a response carries key material: {body[..Math.Min(300, body.Length)]}");
    }
}
