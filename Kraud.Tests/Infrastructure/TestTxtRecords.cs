using System.Collections.Concurrent;
using Kraud.Api.Ingresses;

namespace Kraud.Tests.Infrastructure;

/// <summary>The DNS the domain verification sees in tests: TXT records a test publishes (the real check, a replaced resolver).</summary>
public sealed class TestTxtRecords : ITxtResolver
{
    private readonly ConcurrentDictionary<string, List<string>> _records = new();

    public void Publish(string name, string value) => _records.AddOrUpdate(name, [value], (_, list) => [.. list, value]);

    public Task<IReadOnlyList<string>> TxtAsync(string name, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<string>>(_records.TryGetValue(name, out var values) ? values : []);
}
