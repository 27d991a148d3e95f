using Kraud.Domain.Fleet;

namespace Kraud.Tests.Domain;

public class HeartbeatSilenceSpecs
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 3, 12, 0, TimeSpan.Zero);
    private static readonly Guid A = Guid.NewGuid(), B = Guid.NewGuid(), C = Guid.NewGuid();

    private static HeartbeatSilence.Heard Renewed(Guid host, double at) => new(host, T0.AddSeconds(at));

    private static IReadOnlyList<HeartbeatSilence.Silent> Find(double now, params HeartbeatSilence.Heard[] fleet) =>
        HeartbeatSilence.Find(fleet, fleet, T0.AddSeconds(now), Window);

    [Fact]
    public void a_host_whose_lease_is_older_than_the_window_is_silent_for_its_age()
    {
        var silent = Assert.Single(Find(40, Renewed(A, 39), Renewed(B, 39.5), Renewed(C, 20)));
        Assert.Equal(C, silent.HostId);
        Assert.Equal(TimeSpan.FromSeconds(20), silent.For);
    }

    [Fact]
    public void a_lease_renewed_within_the_window_is_alive()
    {
        Assert.Empty(Find(40, Renewed(A, 39), Renewed(B, 30)));
    }

    [Fact]
    public void when_no_host_renewed_its_lease_for_the_window_nobody_is_failed()
    {
        Assert.Empty(Find(100, Renewed(A, 39), Renewed(B, 20)));
    }

    [Fact]
    public void failed_hosts_show_the_path_works_but_are_not_judged_again()
    {
        var fleet = new[] { Renewed(A, 5), Renewed(B, 39) };
        Assert.Empty(HeartbeatSilence.Find(fleet, [fleet[1]], T0.AddSeconds(40), Window));
        var silent = Assert.Single(HeartbeatSilence.Find(fleet, fleet, T0.AddSeconds(40), Window));
        Assert.Equal(A, silent.HostId);
    }
}
