using System.CommandLine;
using Kraud.Cli.Api;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli.Commands;

/// <summary>kraud ingresses create|list|get|delete, kraud ingresses domains add|verify</summary>
public static class IngressCommands
{
    private static readonly Argument<string> IngressArg = new("ingress") { Description = "The ingress's id or name" };

    private static readonly Column<Ingress>[] Columns =
    [
        new("NAME", i => i.Name), new("KIND", i => i.Kind), new("STATE", i => i.State),
        new("ROUTES", i => string.Join("\n", i.Routes.Select(r => $"{r.Host}{r.Path} -> {r.PodId}:{r.Port}"))),
        new("REPLICAS", i => string.Join(",", i.Replicas.GroupBy(r => r.Zone).Select(g => $"{g.Key}:{g.Count()}"))),
        new("PUBLIC", i => i.PublicAddress), new("ID", i => i.Id),
    ];

    public static Command Build()
    {
        var name = new Argument<string>("name") { Description = "The ingress's name" };
        var kind = new Option<string>("--kind") { Description = "MANAGED, AUTHENTICATED or DIRECT", DefaultValueFactory = _ => "MANAGED" };
        kind.AcceptOnlyFromAmong("MANAGED", "AUTHENTICATED", "DIRECT");
        var route = new Option<string[]>("--route") { Description = "HOST[/PATH]=POD_ID:PORT, repeatable" };
        var create = new Command("create", "Create an ingress routing hosts and paths to pods").With(name, kind, route);
        create.Does(async c =>
        {
            var routes = c.Get(route).Select(ParseRoute).ToList();
            var i = await c.RunAsync(IngressesApi.Create, new { input = new { name = c.Get(name), kind = c.Get(kind), routes } });
            c.Output.Done(i, $"ingress {i.Name} created ({i.Id}), {i.State}");
        });

        var list = new Command("list", "List ingresses");
        list.Aliases.Add("ls");
        list.Does(async c => c.Output.List(await c.RunAsync(IngressesApi.List), Columns));

        var get = new Command("get", "Show one ingress with its domains").With(IngressArg);
        get.Does(async c => c.Output.One(await IngressesApi.FindAsync(c, c.Get(IngressArg)),
        [
            .. Columns, new Column<Ingress>("DOMAINS", i => string.Join("\n", i.Domains.Select(d => $"{d.Name} {(d.Verified ? "verified" : $"TXT {d.VerificationToken}")}"))),
            new Column<Ingress>("WARNINGS", i => string.Join("\n", i.Warnings)),
        ]));

        var delete = new Command("delete", "Delete an ingress").With(IngressArg);
        delete.Aliases.Add("rm");
        delete.Does(async c =>
        {
            var found = await IngressesApi.FindAsync(c, c.Get(IngressArg));
            var i = await c.RunAsync(IngressesApi.Delete, new { id = found.Id });
            c.Output.Done(i, $"ingress {i.Name} deleted");
        });

        var domain = new Argument<string>("domain") { Description = "A domain of yours, e.g. shop.example.com" };
        var add = new Command("add", "Add a custom domain; publish the TXT record it answers with").With(IngressArg, domain);
        add.Does(async c =>
        {
            var found = await IngressesApi.FindAsync(c, c.Get(IngressArg));
            var d = await c.RunAsync(IngressesApi.AddDomain, new { ingressId = found.Id, name = c.Get(domain) });
            c.Output.Done(d, $"publish TXT \"{d.VerificationToken}\" at _kraud-challenge.{d.Name}, then run: kraud ingresses domains verify {found.Name} {d.Name}");
        });
        var verify = new Command("verify", "Check the domain's TXT record; a verified domain serves").With(IngressArg, domain);
        verify.Does(async c =>
        {
            var found = await IngressesApi.FindAsync(c, c.Get(IngressArg));
            var d = await c.RunAsync(IngressesApi.VerifyDomain, new { ingressId = found.Id, name = c.Get(domain) });
            c.Output.Done(d, d.Verified ? $"{d.Name} is verified" : $"{d.Name} is not verified yet");
            return d.Verified ? 0 : 1;
        });
        var domains = new Command("domains", "Custom domains of an ingress").With(add, verify);

        return new Command("ingresses", "Ingresses: traffic from the internet to pods").With(create, list, get, delete, domains);
    }

    private static object ParseRoute(string spec)
    {
        var eq = spec.LastIndexOf('=');
        var colon = spec.LastIndexOf(':');
        if (eq <= 0 || colon < eq || !int.TryParse(spec[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            throw new CliException($"--route {spec}: write HOST[/PATH]=POD_ID:PORT.");
        var target = spec[..eq];
        var slash = target.IndexOf('/');
        return new
        {
            host = slash < 0 ? target : target[..slash],
            path = slash < 0 ? "/" : target[slash..],
            podId = spec[(eq + 1)..colon],
            port,
        };
    }
}
