using Kraud.Api.Apps;
using Kraud.Api.Common;
using Kraud.Api.Images;
using Kraud.Api.Network;
using Kraud.Domain.Network;
using Kraud.Domain.Pods;
using Kraud.Projections.Network;
using Kraud.Tests.Infrastructure;
using Marten;
using Marten.Services;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Kraud.Tests.Api;

/// <summary>
/// ReadAhead, how the scheduler's batch reads what its boots need once for all its pods (and a create its own reads): a session answers the documents it
/// read ahead from what it read, a missing one included, and reads anything else from the database as before.
/// </summary>
[Collection(ApiCollection.Name)]
public class ReadAheadSpecs(KraudApp app)
{
    [Fact]
    public async Task documents_read_ahead_are_answered_as_they_were_read_absent_ones_included_and_others_are_read_when_asked()
    {
        var tenant = Guid.NewGuid();
        var app1 = Guid.NewGuid();
        string Id(string field) => AppSecretValue.IdFor(app1, field);
        await using (var setup = app.Store.LightweightSession())
        {
            setup.Store(new AppSecretValue { Id = Id("read"), TenantId = tenant, AppId = app1, Value = "as read ahead" });
            await setup.SaveChangesAsync();
        }

        await using var session = app.Store.LightweightSession();
        var ahead = new ReadAhead(session);
        ahead.LoadMany<AppSecretValue, string>([Id("read"), Id("missing")], s => s.Id);
        await ahead.ExecuteAsync();

        // Changed and added after the read ahead: only a read of the database now would see it.
        await using (var other = app.Store.LightweightSession())
        {
            other.Store(new AppSecretValue { Id = Id("read"), TenantId = tenant, AppId = app1, Value = "changed since" });
            other.Store(new AppSecretValue { Id = Id("missing"), TenantId = tenant, AppId = app1, Value = "added since" });
            other.Store(new AppSecretValue { Id = Id("other"), TenantId = tenant, AppId = app1, Value = "never read ahead" });
            await other.SaveChangesAsync();
        }

        var known = await ReadAhead.LoadManyAsync<AppSecretValue, string>(session, [Id("read"), Id("missing")]);
        Assert.Equal(["as read ahead"], known.Select(s => s.Value));
        Assert.Null(await ReadAhead.LoadAsync<AppSecretValue, string>(session, Id("missing")));

        var partly = await ReadAhead.LoadManyAsync<AppSecretValue, string>(session, [Id("read"), Id("other")]);
        Assert.Equal(["changed since", "never read ahead"], partly.Select(s => s.Value).Order());
        await using var fresh = app.Store.QuerySession();
        Assert.Equal("added since", (await ReadAhead.LoadAsync<AppSecretValue, string>(fresh, Id("missing")))!.Value);
    }

    [Fact]
    public async Task a_creates_pod_stream_for_writing_vpc_view_and_registry_credential_are_read_in_one_round_trip_each_answered_once()
    {
        var tenant = Guid.NewGuid();
        var podId = Guid.NewGuid();
        await using (var setup = app.Store.LightweightSession())
        {
            setup.Store(new RegistryCredentialSecret { Id = Guid.NewGuid(), TenantId = tenant, Registry = "registry.example", Username = "ci" });
            await setup.SaveChangesAsync();
        }
        var credentials = app.Host.Services.GetRequiredService<RegistryCredentials>();

        await using var session = app.Store.LightweightSession();
        var trips = new RoundTrips();
        session.Logger = trips;
        var ahead = new ReadAhead(session);
        Streams.ReadAheadForWriting<Pod>(ahead, podId);
        AddressBook.ReadAheadForCreate(ahead, tenant);
        RegistryCredentials.ReadAheadForConfirm(ahead, tenant, "registry.example");
        await ahead.ExecuteAsync();
        Assert.Equal(1, trips.Count);

        var loaded = await Streams.FetchForWritingAsync<Pod>(session, podId);
        Assert.Null(await ReadAhead.LoadAsync<VpcView, Guid>(session, Vpc.IdFor(tenant)));
        Assert.Equal("ci", (await credentials.ReadAsync(session, tenant, "registry.example", CancellationToken.None))?.Username);
        Assert.False(loaded.State.Exists);
        Assert.Equal(1, trips.Count);

        // Taken once: the next read of each goes to the database.
        Assert.Equal("ci", (await credentials.ReadAsync(session, tenant, "registry.example", CancellationToken.None))?.Username);
        Assert.Equal(2, trips.Count);

        // The stream read ahead is Marten's handle for writing: a writer that started it first makes this commit fail.
        await using (var other = app.Store.LightweightSession())
        {
            other.Events.StartStream<Pod>(podId, new PodStopped(podId, DateTimeOffset.UtcNow));
            await other.SaveChangesAsync();
        }
        loaded.Stream!.AppendOne(new PodStopped(podId, DateTimeOffset.UtcNow));
        await Assert.ThrowsAsync<Marten.Exceptions.ExistingStreamIdCollisionException>(() => session.SaveChangesAsync());
    }

    /// <summary>Counts the commands and batches a session sends: one each per round trip.</summary>
    private sealed class RoundTrips : IMartenSessionLogger
    {
        public int Count { get; private set; }
        public void OnBeforeExecute(NpgsqlCommand command) => Count++;
        public void OnBeforeExecute(NpgsqlBatch batch) => Count++;
        public void LogSuccess(NpgsqlCommand command) { }
        public void LogSuccess(NpgsqlBatch batch) { }
        public void LogFailure(NpgsqlCommand command, Exception ex) { }
        public void LogFailure(NpgsqlBatch batch, Exception ex) { }
        public void LogFailure(Exception ex, string message) { }
        public void RecordSavedChanges(IDocumentSession session, IChangeSet commit) { }
    }
}
