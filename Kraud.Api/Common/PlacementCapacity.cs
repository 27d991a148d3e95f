using JasperFx.Events;
using Kraud.Domain.Fleet;
using Kraud.Projections.Fleet;
using Marten;
using Marten.Services;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Common;

/// <summary>
/// A placement scheduler's copy of its hosts' capacity, kept in memory between batches (the pod scheduler has one for the
/// compute hosts, the volume scheduler one for the storage hosts; each is the single writer of its placements). A batch
/// locks its hosts' streams and reads their versions in one statement; only hosts whose stream moved since the copy was
/// taken are read again: another writer appended (a release, a cordon, a failure, a heartbeat's correction), or a batch of
/// ours did not commit. So a batch reads what changed, not every host with every microVM it runs, and the copy starts
/// empty (read in full on the first batch after a start). What a batch appends reaches the copy only when it commits.
/// </summary>
public sealed class PlacementCapacity(HostRole role)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<Guid, (Host Host, long Version)> _known = [];

    public HostRole Role { get; } = role;

    /// <summary>How many host views the copy read from the database since it was made (for the specs: what changed, not every host).</summary>
    public long HostsRead { get; private set; }

    /// <summary>Every host of the role, locked for this session's transaction, as it is now.</summary>
    public async Task<Dictionary<Guid, Host>> LockAsync(IDocumentSession session)
    {
        var ids = await session.Query<HostView>().Where(h => h.Role == Role).Select(h => h.Id).ToListAsync();
        var versions = await Streams.LockReadingVersionsAsync(session, ids);
        var fleet = new Dictionary<Guid, Host>(versions.Count);
        var stale = new List<Guid>();
        lock (_gate)
        {
            foreach (var (id, version) in versions)
            {
                if (_known.TryGetValue(id, out var known) && known.Version == version) fleet[id] = known.Host;
                else stale.Add(id);
            }
        }
        if (stale.Count > 0)
        {
            // Under the lock: each view is the one its stream's version belongs to.
            var views = await session.LoadManyAsync<HostView>(stale);
            lock (_gate)
            {
                HostsRead += views.Count;
                foreach (var view in views)
                {
                    fleet[view.Id] = view.Host;
                    _known[view.Id] = (view.Host, versions[view.Id]);
                }
            }
        }
        session.Listeners.Add(new CommittedPlacements(this, fleet, versions));
        return fleet;
    }

    /// <summary>The batch committed: its hosts as the locked state plus what it appended to their streams.</summary>
    private void Committed(IReadOnlyDictionary<Guid, Host> locked, IReadOnlyDictionary<Guid, long> versions, IEnumerable<StreamAction> streams)
    {
        lock (_gate)
        {
            foreach (var stream in streams)
            {
                if (!locked.TryGetValue(stream.Id, out var host) || stream.Events.Count == 0) continue;
                var version = versions[stream.Id];
                // A later batch may have read the host again already; never go back to an older state.
                if (_known.TryGetValue(stream.Id, out var known) && known.Version > version) continue;
                _known[stream.Id] = (stream.Events.Aggregate(host, (h, e) => h.Evolve(e.Data)), version + stream.Events.Count);
            }
        }
    }

    private sealed class CommittedPlacements(PlacementCapacity capacity, IReadOnlyDictionary<Guid, Host> locked, IReadOnlyDictionary<Guid, long> versions)
        : DocumentSessionListenerBase
    {
        // The dictionary the handler goes on to change is a copy: the state as locked is what the appended events fold onto.
        private readonly Dictionary<Guid, Host> _locked = new(locked);

        public override Task AfterCommitAsync(IDocumentSession session, IChangeSet commit, CancellationToken token)
        {
            capacity.Committed(_locked, versions, commit.GetStreams());
            return Task.CompletedTask;
        }
    }
}

/// <summary>The schedulers' copies: compute hosts for pods, storage hosts for volume replicas.</summary>
public sealed class PlacementCapacities
{
    public PlacementCapacity Compute { get; } = new(HostRole.Compute);
    public PlacementCapacity Storage { get; } = new(HostRole.Storage);
}
