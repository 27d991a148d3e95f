namespace Kraud.Domain.Common;

/// <summary>A decider's state: an initial value and a pure Evolve over the stream's events.</summary>
public interface IState<TSelf> where TSelf : IState<TSelf>
{
    static abstract TSelf Initial { get; }
    TSelf Evolve(object @event);
}

public static class Fold
{
    public static T Events<T>(IEnumerable<object> events) where T : IState<T> =>
        events.Aggregate(T.Initial, (state, e) => state.Evolve(e));
}
