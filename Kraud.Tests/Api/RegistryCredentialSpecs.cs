using System.Text;
using Kraud.Domain.Images;
using Kraud.HostRuntime.Images;
using Kraud.Tests.HostRuntime;
using Kraud.Tests.Infrastructure;
using Npgsql;

namespace Kraud.Tests.Api;

/// <summary>Private registries: a tenant's ADMIN stores a login, Kraud checks it, resolves and pulls with it, and never shows the password.</summary>
[Collection(ApiCollection.Name)]
public sealed class RegistryCredentialSpecs(KraudApp app, ImageRegistries registries) : IClassFixture<ImageRegistries>, IAsyncLifetime
{
    private readonly SpecTenants _tenants = new(app);

    public Task InitializeAsync() => _tenants.InitializeAsync();

    public Task DisposeAsync() => _tenants.DisposeAsync();

    private const string Fields = "id registry username createdAt";

    private static Task<GqlResponse> AddAsync(TenantScope tenant, string registry, string username, string password) =>
        tenant.Gql($"mutation($in: RegistryCredentialInput!) {{ addRegistryCredential(input: $in) {{ {Fields} }} }}",
            new { @in = new { registry, username, password } });

    private static Task<GqlResponse> CreatePodAsync(TenantScope tenant, string image, string name = "private") =>
        tenant.Gql("mutation($in: CreatePodInput!) { createPod(input: $in) { id imageDigest instances { id } } }",
            new { @in = new { name, image, cpu = 1, memoryMiB = 128 } });

    /// <summary>Every row Kraud keeps (events, documents, queues, message storage) as text: a secret must be in none of them.</summary>
    private async Task<string> EverythingStoredAsync()
    {
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand(
                         "select format('%I.%I', table_schema, table_name) from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')",
                         connection))
        await using (var reader = await list.ExecuteReaderAsync())
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        var all = new StringBuilder();
        foreach (var table in tables)
        {
            await using var dump = new NpgsqlCommand($"select coalesce(string_agg(t::text, E'\\n'), '') from {table} t", connection);
            all.Append(await dump.ExecuteScalarAsync());
        }
        return all.ToString();
    }

    private async Task<string> PushPrivateAsync(TestRegistry registry, string repository)
    {
        using var image = await ImageRegistries.HelloAsync();
        return await image.PushAsync(registry, $"{repository}:1");
    }

    [Fact]
    public async Task an_admin_adds_a_credential_the_registry_accepts_it_is_listed_without_its_password_and_the_password_is_stored_nowhere_in_clear()
    {
        var tenant = await _tenants.NewAsync();
        var login = registries.Basic.Login!;

        var added = (await AddAsync(tenant, registries.Basic.HostPort, login.Username, login.Password)).ShouldSucceed();

        var credential = added.Data.GetProperty("addRegistryCredential");
        Assert.Equal((registries.Basic.HostPort, login.Username), (credential.GetProperty("registry").GetString(), credential.GetProperty("username").GetString()));
        var listed = (await tenant.Gql($"{{ registryCredentials {{ {Fields} }} }}")).ShouldSucceed();
        Assert.Equal(credential.Id(), Assert.Single(listed.Data.GetProperty("registryCredentials").EnumerateArray()).Id());
        Assert.DoesNotContain(login.Password, added.Body + listed.Body);
        Assert.DoesNotContain(login.Password, await EverythingStoredAsync());
        // Another tenant sees nothing of it and cannot remove it.
        var other = await _tenants.NewAsync();
        Assert.Empty((await other.Gql("{ registryCredentials { id } }")).ShouldSucceed().Data.GetProperty("registryCredentials").EnumerateArray());
        (await other.Gql("mutation($id: ID!) { removeRegistryCredential(id: $id) }", new { id = credential.Id() })).ShouldFailWith("NOT_FOUND");
        // One login per registry.
        (await AddAsync(tenant, registries.Basic.HostPort, login.Username, login.Password)).ShouldFailWith("CONFLICT");
    }

    [Fact]
    public async Task a_wrong_password_is_refused_with_a_clear_error_and_nothing_is_appended()
    {
        var tenant = await _tenants.NewAsync();
        var before = await tenant.EventCountAsync();

        var refused = (await AddAsync(tenant, registries.Basic.HostPort, registries.Basic.Login!.Username, "not-the-password")).ShouldFailWith("VALIDATION");

        Assert.Contains($"registry {registries.Basic.HostPort} refused the credentials of user '{registries.Basic.Login.Username}'", refused.FirstErrorMessage);
        Assert.Equal(before, await tenant.EventCountAsync());
        Assert.Empty((await tenant.Gql("{ registryCredentials { id } }")).ShouldSucceed().Data.GetProperty("registryCredentials").EnumerateArray());
        Assert.DoesNotContain("not-the-password", await EverythingStoredAsync());
        // Only the tenant's ADMIN manages credentials.
        var member = await tenant.TokenAsync("MEMBER");
        (await app.Host.GraphQL(member, "mutation { addRegistryCredential(input: {registry: \"r.example\", username: \"u\", password: \"p\"}) { id } }"))
            .ShouldFailWith("FORBIDDEN");
    }

    [Theory]
    [InlineData("htpasswd")]
    [InlineData("token")]
    public async Task a_private_image_resolves_with_the_tenants_credential_its_microvms_get_it_sealed_for_their_host_and_other_tenants_are_refused(string kind)
    {
        var registry = kind == "token" ? registries.Token : registries.Basic;
        var repository = $"private/app-{Guid.NewGuid():N}"[..20];
        var digest = await PushPrivateAsync(registry, repository);
        var image = $"{registry.HostPort}/{repository}:1";
        var tenant = await _tenants.NewAsync();
        var stranger = await _tenants.NewAsync();
        var before = await stranger.EventCountAsync();

        Assert.Contains("addRegistryCredential", (await CreatePodAsync(stranger, image)).ShouldFailWith("VALIDATION").FirstErrorMessage);
        Assert.Equal(before, await stranger.EventCountAsync());

        (await AddAsync(tenant, registry.HostPort, registry.Login!.Username, registry.Login.Password)).ShouldSucceed();
        var pod = (await CreatePodAsync(tenant, image)).ShouldSucceed().Data.GetProperty("createPod");
        Assert.Equal(digest, pod.GetProperty("imageDigest").GetString());

        // The boot command carried the password sealed to the fleet's key: the host runtime opens it, the message holds no clear text.
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = Guid.Parse(Assert.Single(running.Instances()).Id());
        var agent = app.Agents.All.Single(a => a.Driver.Running.Contains(vm));
        var credential = ((Kraud.HostRuntime.Drivers.SimulatedDriver)agent.Driver).Find(vm)!.Oci!.Credential!;
        Assert.Equal(registry.Login.Username, credential.Username);
        Assert.Equal(registry.Login.Password, Encoding.UTF8.GetString(SecretSealing.Open(agent.Sealing, credential.Password,
            SecretSealing.RegistryCredentialContext(tenant.Id, registry.HostPort))));
        Assert.DoesNotContain(registry.Login.Password, await EverythingStoredAsync());
    }

    [Fact]
    public async Task a_removed_credential_no_longer_resolves_private_images()
    {
        var registry = registries.Basic;
        var repository = $"private/gone-{Guid.NewGuid():N}"[..21];
        await PushPrivateAsync(registry, repository);
        var tenant = await _tenants.NewAsync();
        var id = (await AddAsync(tenant, registry.HostPort, registry.Login!.Username, registry.Login.Password)).ShouldSucceed()
            .Data.GetProperty("addRegistryCredential").Id();
        (await CreatePodAsync(tenant, $"{registry.HostPort}/{repository}:1", "before")).ShouldSucceed();

        Assert.True((await tenant.Gql("mutation($id: ID!) { removeRegistryCredential(id: $id) }", new { id })).ShouldSucceed()
            .Data.GetProperty("removeRegistryCredential").GetBoolean());

        Assert.Empty((await tenant.Gql("{ registryCredentials { id } }")).ShouldSucceed().Data.GetProperty("registryCredentials").EnumerateArray());
        (await CreatePodAsync(tenant, $"{registry.HostPort}/{repository}:1", "after")).ShouldFailWith("VALIDATION");
        var events = (await app.EventsOf(Guid.Parse(id))).Select(e => e.Data).ToList();
        Assert.IsType<RegistryCredentialAdded>(events[0]);
        Assert.IsType<RegistryCredentialRemoved>(events[1]);
        (await tenant.Gql("mutation($id: ID!) { removeRegistryCredential(id: $id) }", new { id })).ShouldFailWith("NOT_FOUND");
    }

    [Fact]
    public async Task a_tenant_refused_a_private_image_for_want_of_a_credential_creates_the_pod_right_after_adding_one()
    {
        var registry = registries.Basic;
        var repository = $"private/late-{Guid.NewGuid():N}"[..21];
        var digest = await PushPrivateAsync(registry, repository);
        var image = $"{registry.HostPort}/{repository}:1";
        var tenant = await _tenants.NewAsync();

        // The control plane remembers that the tenant had no credential for the registry; the next create must not trust that.
        Assert.Contains("addRegistryCredential", (await CreatePodAsync(tenant, image, "refused")).ShouldFailWith("VALIDATION").FirstErrorMessage);
        (await AddAsync(tenant, registry.HostPort, registry.Login!.Username, registry.Login.Password)).ShouldSucceed();

        var pod = (await CreatePodAsync(tenant, image, "admitted")).ShouldSucceed().Data.GetProperty("createPod");
        Assert.Equal(digest, pod.GetProperty("imageDigest").GetString());
        var running = await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        var vm = Guid.Parse(Assert.Single(running.Instances()).Id());
        var agent = app.Agents.All.Single(a => a.Driver.Running.Contains(vm));
        Assert.Equal(registry.Login.Username, ((Kraud.HostRuntime.Drivers.SimulatedDriver)agent.Driver).Find(vm)!.Oci!.Credential!.Username);
    }
}
