using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Console;

/// <summary>The tenant's other pages show what the API returns for its token; their screenshots go to docs/console.</summary>
[Collection(ConsoleCollection.Name)]
public class ConsolePagesSpecs(ConsoleApp app)
{
    [Fact]
    public async Task an_admin_sees_volumes_ingresses_with_domain_tokens_the_vpc_charts_and_a_verified_audit_log_it_can_download()
    {
        var tenant = await ConsoleTenant.CreateAsync(app, "pages");
        var pod = await tenant.CreatePodAsync("shop", replicas: 2);
        await tenant.WaitForPodAsync(pod.Id(), p => p.State() == "RUNNING", "the pod runs");
        (await tenant.Gql("mutation { createVolume(input: {name: \"orders\", class: BLOCK, sizeGiB: 20}) { id } }")).ShouldSucceed();
        var ingress = (await tenant.Gql("mutation($in: CreateIngressInput!) { createIngress(input: $in) { id } }", new
        {
            @in = new { name = "shop", kind = "MANAGED", routes = new[] { new { host = $"shop-{tenant.Name}.ingress.kraud.cloud", path = "/", podId = pod.Id(), port = 80 } } },
        })).ShouldSucceed().Data.GetProperty("createIngress").Id();
        var token = (await tenant.Gql("mutation($id: ID!) { addDomain(ingressId: $id, name: \"shop.example.com\") { verificationToken } }", new { id = ingress }))
            .ShouldSucceed().Data.GetProperty("addDomain").GetProperty("verificationToken").GetString()!;

        await app.WaitForAuditAsync(tenant.Token, "pod_requested", DateTime.UtcNow.AddMinutes(-5));

        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(tenant.Token);

        await page.OpenAsync("volumes");
        await page.WaitForAsync("tr[data-volume-name=orders]");
        await page.Page.WaitForFunctionAsync("() => document.querySelectorAll('tr[data-volume-name=orders] ul.plain li').length === 3");
        await page.ScreenshotAsync("volumes");

        await page.OpenAsync("ingresses");
        await page.WaitForAsync("[data-ingress-name=shop] tr[data-domain='shop.example.com']");
        Assert.Contains(token, await page.TextAsync("[data-ingress-name=shop] tr[data-domain='shop.example.com']"));
        Assert.Equal(3, await page.CountAsync("[data-ingress-name=shop] table:first-of-type tbody tr"));
        await page.ScreenshotAsync("ingresses");

        await page.OpenAsync("vpc");
        var prefix = await page.WaitForAsync("[data-testid=vpc-prefix]");
        Assert.EndsWith("::/48", await prefix.EvaluateFunctionAsync<string>("e => e.textContent"));
        await page.ScreenshotAsync("vpc");

        await page.OpenAsync("overview");
        await page.WaitForAsync("[data-testid=chart-states] svg.chart rect.bar.state-running");
        await page.WaitForAsync("[data-testid=chart-boots] svg.chart rect.bar");
        await page.ScreenshotAsync("overview");

        await page.OpenAsync("audit");
        await page.WaitForAsync("[data-testid=audit-log] tr[data-action=pod_requested]");
        Assert.Equal(0, await page.CountAsync("[data-testid=audit-log] tr[data-action=host_registered]")); // the platform's own entries are not the tenant's
        await page.Page.ClickAsync("[data-testid=verify-chain]");
        await page.WaitForAsync("[data-testid=verify-result][data-valid=true]");
        await page.ScreenshotAsync("audit");

        var downloads = Directory.CreateTempSubdirectory("kraud-console-downloads-");
        try
        {
            await page.Page.Client.SendAsync("Page.setDownloadBehavior", new { behavior = "allow", downloadPath = downloads.FullName });
            await page.Page.ClickAsync("[data-testid=export]");
            await page.WaitForAsync("[data-testid=export-result] .notice.ok");
            var file = await Eventually.Get(() => Task.FromResult(downloads.GetFiles("kraud-audit-*.jsonl").FirstOrDefault()), f => f is not null,
                TimeSpan.FromSeconds(30), "the export was saved");
            var lines = await File.ReadAllLinesAsync(file!.FullName);
            Assert.Contains(lines, l => l.Contains("\"pod_requested\"", StringComparison.Ordinal));
            Assert.Contains("signature", lines[^1], StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            downloads.Delete(recursive: true);
        }
        page.ShouldHaveLoggedNoErrors();
    }
}
