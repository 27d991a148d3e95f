using Kraud.Api.Apps;
using Kraud.Api.Common;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>
/// ReadAhead, how the scheduler's batch reads what its boots need once for all its pods: a session answers the documents it
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
}
