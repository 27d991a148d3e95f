using Kraud.Domain.Fleet;

namespace Kraud.Tests.Domain;

public class HeartbeatSilenceSpecs
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 3, 12, 0, TimeSpan.Zero);
    private static readonly Guid A = Guid.NewGuid(), B = Guid.NewGuid(), C = Guid.NewGuid();

    private static HeartbeatSilence.Heard Heard(Guid host, double sentAt, double handledAt) => new(host, T0.AddSeconds(sentAt), T0.AddSeconds(handledAt));

    private static IReadOnlyList<HeartbeatSilence.Silent> Find(DateTimeOffset now, params HeartbeatSilence.Heard[] fleet) =>
        HeartbeatSilence.Find(fleet, fleet, now, Window);

    [Fact]
    public void a_host_whose_heartbeats_stopped_while_the_others_go_on_is_silent_for_the_gap()
    {
        var silent = Assert.Single(Find(T0.AddSeconds(40), Heard(A, 39, 39.1), Heard(B, 39.5, 39.6), Heard(C, 20, 20.1)));
        Assert.Equal(C, silent.HostId);
        Assert.Equal(TimeSpan.FromSeconds(19.5), silent.For);
    }

    [Fact]
    public void a_host_silent_for_no_longer_than_the_window_is_not()
    {
        Assert.Empty(Find(T0.AddSeconds(40), Heard(A, 39, 39), Heard(B, 29, 29)));
    }

    [Fact]
    public void when_the_control_plane_lags_behind_its_queue_no_live_host_looks_silent()
    {
        // Every heartbeat is handled a minute after it was sent, in the order sent: by the clock all hosts are 60 s behind.
        Assert.Empty(Find(T0.AddSeconds(100), Heard(A, 39, 99), Heard(B, 40, 99.5), Heard(C, 38, 98)));
    }

    [Fact]
    public void a_dead_host_is_still_found_while_the_control_plane_lags()
    {
        var silent = Assert.Single(Find(T0.AddSeconds(100), Heard(A, 39, 99), Heard(B, 40, 99.5), Heard(C, 15, 75)));
        Assert.Equal(C, silent.HostId);
    }

    [Fact]
    public void when_no_heartbeat_at_all_was_handled_for_the_window_nobody_is_failed()
    {
        Assert.Empty(Find(T0.AddSeconds(100), Heard(A, 39, 39), Heard(B, 20, 20)));
    }

    [Fact]
    public void a_host_whose_clock_runs_ahead_does_not_make_the_others_silent()
    {
        Assert.Empty(Find(T0.AddSeconds(40), Heard(A, 99, 39.5), Heard(B, 39, 39.2)));
    }

    [Fact]
    public void failed_hosts_set_the_reference_but_are_not_judged_again()
    {
        var fleet = new[] { Heard(A, 39, 39), Heard(B, 5, 5) };
        Assert.Empty(HeartbeatSilence.Find(fleet, [fleet[0]], T0.AddSeconds(40), Window));
    }
}
