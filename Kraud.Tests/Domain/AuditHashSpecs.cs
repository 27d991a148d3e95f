using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Kraud.Projections.Audit;

namespace Kraud.Tests.Domain;

public class AuditHashSpecs
{
    private static AuditEntry Entry() => new()
    {
        Id = 7, EventSeq = 12, At = new DateTimeOffset(2026, 11, 29, 3, 12, 0, TimeSpan.Zero), TenantId = Guid.NewGuid(), Actor = "token:a",
        Action = "CreatePod", ResourceId = Guid.NewGuid(), Outcome = "accepted", CorrelationId = "c", CausationId = "d", PreviousHash = AuditEntry.Genesis,
    };

    [Fact]
    public void the_hash_is_stable_for_the_same_content()
    {
        var entry = Entry();
        Assert.Equal(entry.ComputeHash(), entry.ComputeHash());
        Assert.Matches("^[0-9a-f]{64}$", entry.ComputeHash());
    }

    public static TheoryData<string> Fields => ["Id", "Actor", "Action", "Outcome", "TenantId", "ResourceId", "At", "PreviousHash", "CorrelationId"];

    [Theory]
    [MemberData(nameof(Fields))]
    public void changing_any_field_changes_the_hash(string field)
    {
        var entry = Entry();
        var original = entry.ComputeHash();
        switch (field)
        {
            case "Id": entry.Id++; break;
            case "Actor": entry.Actor = "token:b"; break;
            case "Action": entry.Action = "DeletePod"; break;
            case "Outcome": entry.Outcome = "rejected"; break;
            case "TenantId": entry.TenantId = Guid.NewGuid(); break;
            case "ResourceId": entry.ResourceId = null; break;
            case "At": entry.At = entry.At.AddTicks(10); break;
            case "PreviousHash": entry.PreviousHash = new string('1', 64); break;
            case "CorrelationId": entry.CorrelationId = "x"; break;
        }
        Assert.NotEqual(original, entry.ComputeHash());
    }

    /// <summary>The rendering as the chain has hashed it from its first entry on (a published format: verifiers recompute it).</summary>
    private static string Reference(AuditEntry e) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n',
        e.Id.ToString(CultureInfo.InvariantCulture), e.EventSeq.ToString(CultureInfo.InvariantCulture),
        e.At.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture), e.TenantId?.ToString() ?? "", e.Actor, e.Action,
        e.ResourceId?.ToString() ?? "", e.Outcome, e.CorrelationId ?? "", e.CausationId ?? "", e.PreviousHash))));

    [Fact]
    public void the_hash_is_the_sha256_of_the_fields_joined_by_newlines_for_any_content()
    {
        var random = new Random(21);
        var entries = new List<AuditEntry>
        {
            Entry(),
            new() { Id = long.MaxValue, EventSeq = 0, At = new DateTimeOffset(1999, 12, 31, 23, 59, 59, 999, TimeSpan.FromHours(-7)).AddTicks(9), Actor = "",
                Action = "", Outcome = "", PreviousHash = "" },
            new() { Id = 1, EventSeq = 1, At = DateTimeOffset.UnixEpoch, TenantId = Guid.Empty, Actor = "token:zoë 🚀 \n line", Action = "Straße",
                ResourceId = Guid.NewGuid(), Outcome = "recorded", CorrelationId = "\ud800 lone surrogate", CausationId = new string('x', 5000),
                PreviousHash = new string('f', 64) },
        };
        for (var i = 0; i < 200; i++)
            entries.Add(new AuditEntry
            {
                Id = random.NextInt64(1, long.MaxValue), EventSeq = random.NextInt64(), At = DateTimeOffset.UnixEpoch.AddTicks(random.NextInt64(0, 60_000_000_000_000_000)),
                TenantId = i % 3 == 0 ? null : Guid.NewGuid(), Actor = $"token:{Guid.NewGuid():N}", Action = $"Pod{i}", ResourceId = i % 4 == 0 ? null : Guid.NewGuid(),
                Outcome = i % 2 == 0 ? "accepted" : "recorded", CorrelationId = i % 5 == 0 ? null : Guid.NewGuid().ToString(),
                CausationId = new string('c', random.Next(0, 400)), PreviousHash = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
            });

        foreach (var entry in entries) Assert.Equal(Reference(entry), entry.ComputeHash());
    }
}
