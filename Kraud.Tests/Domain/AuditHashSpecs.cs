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
}
