using System.CommandLine;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Commands;

/// <summary>kraud whoami, kraud tenants list|create (operators), kraud tokens create|revoke (operators, a tenant's admins)</summary>
public static class AccessCommands
{
    public static Command WhoAmI()
    {
        var cmd = new Command("whoami", "The token's role and tenant");
        cmd.Does(async c => c.Output.One(await c.RunAsync(AccessApi.Me), new Column<Principal>("TOKEN", p => p.TokenId),
            new("ROLE", p => p.Role), new("TENANT", p => p.Tenant is { } t ? $"{t.Name} ({t.Id})" : null)));
        return cmd;
    }

    public static Command Tenants()
    {
        var list = new Command("list", "Every tenant (operators) or your own");
        list.Aliases.Add("ls");
        list.Does(async c => c.Output.List(await c.RunAsync(AccessApi.Tenants),
            new Column<Tenant>("NAME", t => t.Name), new("ID", t => t.Id), new("CREATED", t => Output.Time(t.CreatedAt))));
        var name = new Argument<string>("name") { Description = "The tenant's name" };
        var create = new Command("create", "Create a tenant (operators)").With(name);
        create.Does(async c =>
        {
            var t = await c.RunAsync(AccessApi.CreateTenant, new { name = c.Get(name) });
            c.Output.Done(t, $"tenant {t.Name} created ({t.Id})");
        });
        return new Command("tenants", "Tenants").With(list, create);
    }

    public static Command Tokens()
    {
        var name = new Argument<string>("name") { Description = "What the token is for, e.g. laptop" };
        var role = new Option<string>("--role") { Description = "OPERATOR, ADMIN, MEMBER or AUDITOR", Required = true };
        role.AcceptOnlyFromAmong("OPERATOR", "ADMIN", "MEMBER", "AUDITOR");
        var tenant = new Option<string?>("--tenant") { Description = "The tenant's id (operators; an admin's own tenant otherwise)" };
        var create = new Command("create", "Create an API token; its secret is shown once").With(name, role, tenant);
        create.Does(async c =>
        {
            var t = await c.RunAsync(AccessApi.CreateToken, new { input = new { name = c.Get(name), role = c.Get(role), tenantId = c.Get(tenant) } });
            if (c.Output.Format == OutputFormat.Table)
            {
                // The secret alone on stdout, so `TOKEN=$(kraud tokens create …)` works; the rest is for the person.
                Console.Out.WriteLine(t.Token);
                Console.Error.WriteLine($"token {t.Id} ({t.Role}): keep the secret now, it is not shown again");
            }
            else c.Output.Structured(t);
        });
        var id = new Argument<string>("id") { Description = "The token's id" };
        var revoke = new Command("revoke", "Revoke a token at once").With(id);
        revoke.Does(async c =>
        {
            var ok = await c.RunAsync(AccessApi.RevokeToken, new { id = c.Get(id) });
            c.Output.Done(new { revoked = ok }, ok ? $"token {c.Get(id)} revoked" : $"token {c.Get(id)} was revoked already");
        });
        return new Command("tokens", "API tokens").With(create, revoke);
    }
}
