using System.Reflection;
using Kraud.HostRuntime.Configuration;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Wolverine.Runtime;
using Wolverine.Runtime.Handlers;

namespace Kraud.Tests.Api;

/// <summary>
/// Wolverine builds a message type's handler on its first message, and two threads building one at once can dead-letter
/// a message (<see cref="HandlersBuiltBeforeListening"/>). The race itself is a window of two statements inside Wolverine
/// and cannot be made to strike on demand; what is specified here is that a node leaves nothing to build once it serves.
/// </summary>
[Collection(ApiCollection.Name)]
public class HandlerBuildingSpecs(KraudApp app, Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void a_node_builds_every_message_handler_while_its_first_endpoint_starts()
    {
        var handlers = ((WolverineRuntime)app.Host.Services.GetRequiredService<IWolverineRuntime>()).Handlers;
        var outcome = app.Host.Services.GetRequiredService<HandlersBuiltBeforeListening>().Outcome;

        Assert.NotNull(outcome);
        output.WriteLine($"{outcome.Value.Handlers} handlers built in {outcome.Value.Took.TotalMilliseconds:F0} ms, {outcome.Value.Compiled} in one compilation");
        // One Roslyn compilation for all: each on its own cost a node 5 to 10 s of its start.
        Assert.Equal(handlers.Chains.Length, outcome.Value.Compiled);
        Assert.Equal(handlers.Chains.Length, outcome.Value.Handlers);
        // Wolverine keeps a chain's built handler internal; a chain without one would be built on its first message.
        var builtHandler = typeof(HandlerChain).GetProperty("Handler", BindingFlags.Instance | BindingFlags.NonPublic)!;
        Assert.Empty(handlers.Chains.Where(c => builtHandler.GetValue(c) is not MessageHandler { Chain: not null })
            .Select(c => c.MessageType.FullName));
    }
}
