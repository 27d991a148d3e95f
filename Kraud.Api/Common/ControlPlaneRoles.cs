using JasperFx;
using Wolverine.Runtime;
using Wolverine.Runtime.Agents;

namespace Kraud.Api.Common;

/// <summary>A round that must run on one control-plane node at a time, under the role's name.</summary>
public sealed record ControlPlaneRole(string Name, Type Round)
{
    public Uri Uri => new($"{ControlPlaneRoles.Scheme}://{Name}");
}

/// <summary>
/// Work that must happen once in the cluster (failure detection, placement retries, digest signing, rollouts …) runs as
/// Wolverine agents: the leader node assigns each role to one live node, and when that node stops or stops beating its
/// heart the leader gives the role to another. With one node, that node holds every role. A role's round is built anew
/// each time the node is given it, so that no state of an earlier tenure survives a handover.
/// </summary>
public sealed class ControlPlaneRoles(IEnumerable<ControlPlaneRole> roles, IServiceProvider services) : IStaticAgentFamily
{
    public const string Scheme = "kraud-role";

    private readonly Dictionary<Uri, ControlPlaneRole> _roles = roles.ToDictionary(r => r.Uri);

    string IAgentFamily.Scheme => Scheme;

    public ValueTask<IReadOnlyList<Uri>> AllKnownAgentsAsync() => ValueTask.FromResult<IReadOnlyList<Uri>>(_roles.Keys.ToList());

    public ValueTask<IReadOnlyList<Uri>> SupportedAgentsAsync() => AllKnownAgentsAsync();

    public ValueTask<IAgent> BuildAgentAsync(Uri uri, IWolverineRuntime wolverineRuntime) =>
        _roles.TryGetValue(uri, out var role)
            ? ValueTask.FromResult<IAgent>(new RoleAgent(role, services))
            : throw new InvalidAgentException($"'{uri}' is no role of this control plane: {string.Join(", ", _roles.Keys)}");

    public ValueTask EvaluateAssignmentsAsync(AssignmentGrid assignments)
    {
        assignments.DistributeEvenly(Scheme);
        return ValueTask.CompletedTask;
    }

    private sealed class RoleAgent(ControlPlaneRole role, IServiceProvider services) : IAgent
    {
        private IHostedService? _round;

        public Uri Uri => role.Uri;

        public AgentStatus Status { get; private set; } = AgentStatus.Stopped;

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            _round = (IHostedService)ActivatorUtilities.CreateInstance(services, role.Round);
            await _round.StartAsync(cancellationToken);
            Status = AgentStatus.Running;
        }

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            if (_round is { } round)
            {
                // A round that is mid-way finishes it (BackgroundService waits for it), then the role is free for another node.
                await round.StopAsync(cancellationToken);
                (round as IDisposable)?.Dispose();
                _round = null;
            }
            Status = AgentStatus.Stopped;
        }
    }
}

public static class ControlPlaneRoleRegistration
{
    /// <summary>Runs <typeparamref name="TRound"/> on the one node that holds the role <paramref name="name"/>, not on every node.</summary>
    public static IServiceCollection AddRunOnceRound<TRound>(this IServiceCollection services, string name) where TRound : PeriodicRound =>
        services.AddSingleton(new ControlPlaneRole(name, typeof(TRound)));
}
