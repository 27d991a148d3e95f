using Kraud.Api.Fleet;

namespace Kraud.Tests.Api;

/// <summary>
/// Heartbeats are evidence of a VM no pod owns only when they were sent after a stop could have reached the host. A busy
/// control plane handles a backlog of heartbeats that all predate the stop: counted one by one, they once made the
/// reconciler stop (and record) the same stray VM twice.
/// </summary>
public class HostLivenessSpecs
{
    private static readonly DateTimeOffset StopSent = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private static Dictionary<Guid, int> Sighted(Guid vm, IReadOnlyDictionary<Guid, DateTimeOffset> stops, IEnumerable<DateTimeOffset> sent) =>
        sent.Aggregate(new Dictionary<Guid, int>(), (counts, at) => HostLiveness.Count(counts, HostLiveness.Strays([vm], at, stops, Grace)));

    [Fact]
    public void heartbeats_sent_before_a_stop_could_take_effect_are_no_evidence_however_many_arrive()
    {
        var vm = Guid.NewGuid();
        var backlog = Enumerable.Range(0, 30).Select(i => StopSent.AddSeconds(-10 + (i * 0.5)));
        Assert.True(Sighted(vm, new Dictionary<Guid, DateTimeOffset> { [vm] = StopSent }, backlog).GetValueOrDefault(vm) < HostLiveness.Evidence);
    }

    [Fact]
    public void a_stray_still_listed_after_the_grace_is_evidence_again()
    {
        var vm = Guid.NewGuid();
        var late = new[] { StopSent + Grace + TimeSpan.FromSeconds(1), StopSent + Grace + TimeSpan.FromSeconds(2) };
        Assert.Equal(HostLiveness.Evidence, Sighted(vm, new Dictionary<Guid, DateTimeOffset> { [vm] = StopSent }, late)[vm]);
    }

    [Fact]
    public void a_stray_never_told_to_stop_is_evidence_from_the_first_heartbeat()
    {
        var vm = Guid.NewGuid();
        Assert.Equal(HostLiveness.Evidence, Sighted(vm, new Dictionary<Guid, DateTimeOffset>(), [StopSent, StopSent.AddSeconds(1)])[vm]);
    }
}
