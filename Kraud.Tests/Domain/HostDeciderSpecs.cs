using Kraud.Domain.Access;
using Kraud.Domain.Fleet;

namespace Kraud.Tests.Domain;

public class HostDeciderSpecs
{
    private static readonly DateTimeOffset At = new(2026, 11, 30, 3, 12, 0, TimeSpan.Zero);
    private static readonly Guid HostId = Host.IdFor("c1");
    private static readonly Principal Operator = Principal.System("ops");

    private static Host Given(params object[] events) => events.Aggregate(Host.Initial, (state, e) => state.Evolve(e));

    private static object Registered() => new HostRegistered(HostId, "c1", "z1", "dc1", "r1", HostRole.Compute, 8, 16384, 100, false, "ops", At);
    private static object Placed(Guid vm) => new MicroVmPlaced(HostId, vm, Guid.NewGuid(), Guid.NewGuid(), 1, 512, At);
    private static object Released(Guid vm) => new MicroVmReleased(HostId, vm, "stopped", At);

    [Fact]
    public void draining_an_empty_host_drains_it_at_once()
    {
        var events = HostDecider.Decide(new DrainHost(HostId, Operator, At), Given(Registered()));
        Assert.Collection(events, e => Assert.IsType<HostDrainRequested>(e), e => Assert.IsType<HostDrained>(e));
    }

    [Fact]
    public void a_drain_ends_only_when_the_last_microvm_is_released_whoever_released_it()
    {
        var (a, b) = (Guid.NewGuid(), Guid.NewGuid());
        var draining = Given(Registered(), Placed(a), Placed(b), new HostDrainRequested(HostId, "ops", At));
        Assert.Equal(HostState.Draining, draining.State);

        Assert.Empty(HostDecider.Decide(new FinishDrain(HostId, At), draining));
        Assert.Empty(HostDecider.Decide(new FinishDrain(HostId, At), draining.Evolve(Released(a))));
        var drained = Assert.Single(HostDecider.Decide(new FinishDrain(HostId, At), draining.Evolve(Released(b)).Evolve(Released(a))));
        Assert.Equal(HostState.Cordoned, draining.Evolve(Released(a)).Evolve(Released(b)).Evolve(drained).State);
    }

    [Theory]
    [InlineData(HostState.Ready)]
    [InlineData(HostState.Cordoned)]
    [InlineData(HostState.Failed)]
    public void finishing_a_drain_that_is_not_going_on_changes_nothing(HostState state)
    {
        Assert.Empty(HostDecider.Decide(new FinishDrain(HostId, At), Given(Registered()) with { State = state }));
    }

    [Fact]
    public void a_drain_that_ended_is_not_ended_twice()
    {
        var drained = Given(Registered(), new HostDrainRequested(HostId, "ops", At), new HostDrained(HostId, At));
        Assert.Empty(HostDecider.Decide(new FinishDrain(HostId, At), drained));
    }
}
