using System.Diagnostics;
using JasperFx.CodeGeneration;
using JasperFx.CodeGeneration.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Configuration;
using Wolverine.Runtime;
using Wolverine.Runtime.Handlers;

namespace Kraud.HostRuntime.Configuration;

/// <summary>
/// Builds the handler of every message type before the node's first endpoint (listener or local queue) starts.
/// Wolverine 6 builds a message type's handler on its first message, and two threads doing that at once can hand
/// one of them a handler whose chain is not set yet: <c>HandlerGraph.resolveHandlerFromChain</c> reads
/// <c>chain.Handler</c> outside its lock while <c>HandlerChain.AttachTypesSynchronously</c> publishes <c>Handler</c>
/// one statement before it sets <c>Handler.Chain</c>. The message then fails in <c>MessageHandler.MessageType</c> with a
/// <see cref="NullReferenceException"/> before any retry policy applies and goes to the dead letters (CI run 48 lost a
/// host's boot reports that way; <c>kraud_control</c> is read by five partitions). Built here, on one thread, no
/// message ever meets a handler under construction. See docs/ARCHITECTURE.md, issue 17, for the upstream report.
/// </summary>
/// <remarks>
/// Wolverine compiles every endpoint (applying the endpoint policies) after it has discovered the handlers and before
/// any of them takes a message: its listeners start after <c>validateListenerConfiguration</c> compiled them, a local
/// queue is compiled when it is first built. Every compile waits here until the handlers are built, so a recovered or
/// scheduled message that reaches a local queue early waits too. HTTP requests come after the hosted services started.
/// </remarks>
public sealed class HandlersBuiltBeforeListening : IEndpointPolicy
{
    private readonly Lock _gate = new();
    private bool _built;

    /// <summary>How many handlers the node built, how many of them came out of the one compilation, and how long it took, for the log and the specs.</summary>
    public (int Handlers, int Compiled, TimeSpan Took)? Outcome { get; private set; }

    public void Apply(Endpoint endpoint, IWolverineRuntime runtime)
    {
        // The handler graph is public on the runtime's class only.
        if (runtime is not WolverineRuntime { Handlers: var handlers }) return;
        lock (_gate)
        {
            // Endpoints compiled before Wolverine discovered its handlers (none in Wolverine 6) must not end the wait.
            if (_built || handlers.Chains.Length == 0) return;
            // Set first: building a handler can compile an endpoint on this same thread, which then goes straight on.
            _built = true;
            var watch = Stopwatch.StartNew();
            var log = runtime.LoggerFactory.CreateLogger<HandlersBuiltBeforeListening>();
            var compiled = CompileInOneAssembly(handlers, runtime.Services, log);
            var built = 0;
            foreach (var chain in handlers.Chains)
            {
                try
                {
                    if (handlers.HandlerFor(chain.MessageType) is not null) built++;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // It fails the same way on its first message, where its error handling reports it.
                    log.LogWarning(e, "The handler of {MessageType} could not be built before listening", chain.MessageType);
                }
            }
            Outcome = (built, compiled, watch.Elapsed);
            log.LogInformation("Built {Count} message handlers ({Compiled} in one compilation) in {Elapsed} ms before the first endpoint started",
                built, compiled, watch.ElapsedMilliseconds);
        }
    }

    /// <summary>
    /// Wolverine's dynamic mode compiles each handler in a Roslyn compilation of its own (82 took 6.8 to 10.4 s on this
    /// machine, most of it the per-compilation cost); here they are generated into one assembly and compiled once, then each
    /// chain attaches its type from it, as it would from its own. A chain whose type is not found there (or a compilation
    /// that fails) is left to Wolverine, which builds it alone as before. Returns how many chains attached.
    /// </summary>
    private static int CompileInOneAssembly(HandlerGraph handlers, IServiceProvider services, ILogger log)
    {
        var collection = (ICodeFileCollection)handlers;
        var rules = handlers.Rules;
        if (rules.TypeLoadMode != TypeLoadMode.Dynamic || services.GetService<IAssemblyGenerator>() is not { } compiler) return 0;
        var chains = collection.BuildFiles().OfType<HandlerChain>().ToList();
        try
        {
            var assembly = collection.StartAssembly(rules);
            foreach (ICodeFile chain in chains) chain.AssembleTypes(assembly);
            compiler.Compile(assembly, collection is ICodeFileCollectionWithServices ? services.GetService<IServiceVariableSource>() : null);
            var @namespace = collection.ToNamespace(rules);
            return chains.Count(c => ((ICodeFile)c).AttachTypesSynchronously(rules, assembly.Assembly!, services, @namespace));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogWarning(e, "The message handlers could not be compiled together; each is built on its own");
            return 0;
        }
    }
}

public static class HandlerBuilding
{
    /// <summary>Every handler built before the first endpoint starts (<see cref="HandlersBuiltBeforeListening"/>).</summary>
    public static void BuildHandlersBeforeListening(this WolverineOptions opts)
    {
        var policy = new HandlersBuiltBeforeListening();
        opts.Policies.Add(policy);
        opts.Services.AddSingleton(policy);
    }
}
