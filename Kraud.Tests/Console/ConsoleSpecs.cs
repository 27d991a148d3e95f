using System.Text.Json;
using Kraud.HostRuntime.Logs;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Console;

/// <summary>The web console in real headless Chromium against a real Kraud on a loopback port.</summary>
[Collection(ConsoleCollection.Name)]
public class ConsoleSpecs(ConsoleApp app)
{
    private static string HostOf(JsonElement pod) => pod.Instances()[0].GetProperty("hostId").GetString()!;

    private static async Task SetValueAsync(ConsolePage page, string selector, string value)
    {
        await page.Page.ClickAsync(selector);
        await page.Page.Keyboard.DownAsync("Control");
        await page.Page.Keyboard.PressAsync("a");
        await page.Page.Keyboard.UpAsync("Control");
        await page.Page.Keyboard.PressAsync("Backspace");
        await page.Page.TypeAsync(selector, value);
    }

    [Fact]
    public async Task an_admin_signs_in_creates_a_pod_from_the_form_sees_it_running_scales_it_and_opens_its_timeline()
    {
        var tenant = await ConsoleTenant.CreateAsync(app, "acme");
        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(tenant.Token);
        Assert.Equal("ADMIN", await page.TextAsync("[data-testid=who] .role"));
        await page.WaitForAsync("[data-testid=pods] .empty");

        await page.Page.ClickAsync("[data-testid=create-pod]");
        await page.WaitForAsync("[data-testid=pod-name]");
        await page.Page.TypeAsync("[data-testid=pod-name]", "web");
        await page.Page.TypeAsync("[data-testid=pod-image]", "nginx:1.27");
        await SetValueAsync(page, "[data-testid=pod-replicas]", "2");
        await page.Page.TypeAsync("[data-testid=pod-env]", "GREETING=hello");
        await page.ScreenshotAsync("create-pod");
        await page.Page.ClickAsync("[data-testid=pod-submit]");

        await page.WaitForAsync(".page-head .badge[data-state=RUNNING]");
        Assert.Equal("web", await page.TextAsync("h1 [data-testid=pod-name]"));
        var podId = page.Page.Url.Split("#/pods/")[1];
        Assert.Equal(2, await page.CountAsync("[data-testid=instances] tr[data-state=RUNNING]"));
        var pod = await tenant.PodAsync(podId);
        Assert.Equal("RUNNING", pod.State());
        Assert.Equal(pod.Instances().Select(i => i.GetProperty("hostId").GetString()).Order(),
            (await page.Page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('[data-testid=instances] tr[data-host]')].map(r => r.dataset.host)")).Order());
        await page.ScreenshotAsync("pod");

        await page.OpenAsync("pods");
        await page.WaitForAsync("tr[data-pod-name=web][data-state=RUNNING]");
        Assert.Equal("2/2", await page.TextAsync("tr[data-pod-name=web] .replicas"));
        await page.ScreenshotAsync("pods");

        await page.Page.ClickAsync("tr[data-pod-name=web] a.pod-link");
        await page.WaitForAsync(".page-head .badge[data-state=RUNNING]");
        await SetValueAsync(page, "[data-testid=scale-replicas]", "3");
        await page.Page.ClickAsync("[data-testid=scale]");
        await page.WaitForAsync("[data-testid=action-outcome] .notice.ok");
        await page.Page.WaitForFunctionAsync("() => document.querySelectorAll('[data-testid=instances] tr[data-state=RUNNING]').length === 3");
        Assert.Equal(3, (await tenant.PodAsync(podId)).GetProperty("replicas").GetInt32());

        await page.Page.ClickAsync("[data-tab=timeline]");
        await page.WaitForAsync("[data-testid=timeline] tr[data-event=pod_scaled]");
        Assert.Equal(1, await page.CountAsync("[data-testid=timeline] tr[data-event=pod_requested]"));
        Assert.True(await page.CountAsync("[data-testid=timeline] tr[data-event=pod_replica_running]") >= 3);
        await page.ScreenshotAsync("timeline");

        // The workload's lines as the host runtime ships them (the simulated driver's guests print nothing themselves).
        var replica0 = (await tenant.PodAsync(podId)).Instances()[0];
        var shipper = app.Services.GetRequiredService<WorkloadLogShipper>();
        async Task ShipAsync(string stream, string line)
        {
            shipper.Enqueue(new WorkloadLogLine(Guid.Parse(tenant.Id), Guid.Parse(podId), Guid.Parse(replica0.Id()), 0, DateTimeOffset.UtcNow, stream, line));
            await shipper.FlushAsync(CancellationToken.None);
        }
        await ShipAsync("stdout", "listening on :80");
        await page.Page.ClickAsync("[data-tab=logs]");
        await page.Page.WaitForFunctionAsync("() => document.querySelector('[data-testid=logs]')?.textContent.includes('listening on :80')");
        await page.Page.ClickAsync("[data-testid=follow]");
        await ShipAsync("stderr", "GET /health 503");
        await page.Page.WaitForFunctionAsync("() => [...document.querySelectorAll('[data-testid=logs] .line.stderr')].some(l => l.textContent.includes('GET /health 503'))");
        Assert.Equal(1, await page.CountAsync("[data-testid=logs] .line.stdout"));
        await page.ScreenshotAsync("logs");
        page.ShouldHaveLoggedNoErrors();
    }

    [Fact]
    public async Task scaling_a_pod_someone_changed_meanwhile_is_refused_and_the_conflict_is_shown()
    {
        var tenant = await ConsoleTenant.CreateAsync(app, "race");
        var pod = await tenant.CreatePodAsync("api");
        await tenant.WaitForPodAsync(pod.Id(), p => p.State() == "RUNNING", "the pod runs");
        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(tenant.Token);
        await page.OpenAsync($"pods/{pod.Id()}");
        await page.WaitForAsync("[data-testid=instances] tr[data-state=RUNNING]");

        // The user starts editing: from here on the form acts on the version it showed.
        await SetValueAsync(page, "[data-testid=scale-replicas]", "3");
        var held = await page.TextAsync("[data-testid=base-version]");
        Assert.StartsWith("Acting on version", held);
        (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 2) { version } }", new { id = pod.Id() })).ShouldSucceed();

        await page.Page.ClickAsync("[data-testid=scale]");
        await page.WaitForAsync("[data-testid=action-outcome] .error[data-code=CONFLICT]");
        Assert.Contains("changed meanwhile", await page.TextAsync("[data-testid=action-outcome]"));
        Assert.Equal(2, (await tenant.PodAsync(pod.Id())).GetProperty("replicas").GetInt32());
        await page.ScreenshotAsync("conflict");
        page.ShouldHaveLoggedNoErrors();
    }

    [Fact]
    public async Task the_replay_slider_shows_a_pod_absent_before_it_existed_and_on_another_host_after_its_host_failed()
    {
        var tenant = await ConsoleTenant.CreateAsync(app, "replay");
        var before = DateTime.UtcNow.AddSeconds(-1);
        var pod = await tenant.CreatePodAsync("mover", zone: "fsn1-b");
        var running = await tenant.WaitForPodAsync(pod.Id(), p => p.State() == "RUNNING", "the pod runs");
        var victim = HostOf(running);
        await Task.Delay(1000);
        var runningAt = DateTime.UtcNow;
        app.Agent(victim).PowerOff();
        string rescuer;
        DateTime after;
        try
        {
            var moved = await tenant.WaitForPodAsync(pod.Id(), p => p.State() == "RUNNING" && HostOf(p) != victim, "the pod runs on another host",
                seconds: app.HeartbeatTimeoutSeconds + 60);
            rescuer = HostOf(moved);
            after = DateTime.UtcNow; // before the host is back: at this instant it is FAILED
        }
        finally
        {
            app.Agent(victim).PowerOn();
        }

        // The strip shows the audit chain, which an async projection writes: wait until it holds the failure.
        await app.WaitForAuditAsync(KraudApp.OperatorToken, "host_failed", before);

        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(KraudApp.OperatorToken);
        // A deep link: the window from just before the pod to after its move, at an instant while it ran on the first host.
        await page.OpenAsync($"replay?from={before:O}&to={after:O}&at={runningAt:O}&tenant={tenant.Id}");
        var onVictim = $"[data-testid=replay-map] .host[data-host-id='{victim}'] .vm[data-pod-name=mover]";
        await page.WaitForAsync(onVictim);
        Assert.Equal("RUNNING", await page.Page.EvaluateFunctionAsync<string>("s => document.querySelector(s).dataset.state", onVictim));

        // To the end of the window: the host is FAILED and the replica runs on another host of the zone, drawn as moved.
        await page.Page.FocusAsync("[data-testid=replay-slider]");
        await page.Page.Keyboard.PressAsync("End");
        var onRescuer = $"[data-testid=replay-map] .host[data-host-id='{rescuer}'] .vm[data-pod-name=mover]";
        await page.WaitForAsync(onRescuer);
        Assert.Equal(1, await page.CountAsync($"[data-testid=replay-map] .host[data-host-id='{victim}'][data-state=FAILED]"));
        Assert.Equal(0, await page.CountAsync(onVictim));
        var victimName = await page.Page.EvaluateFunctionAsync<string>("id => document.querySelector(`.host[data-host-id='${id}']`).dataset.host", victim);
        Assert.Equal(victimName, await page.Page.EvaluateFunctionAsync<string>("s => document.querySelector(s).dataset.movedFrom", onRescuer));
        Assert.Contains($"moved from {victimName}", await page.TextAsync("[data-testid=replay-changes]"));
        await page.ScreenshotAsync("replay");

        // To the start of the window: the pod did not exist yet.
        await page.Page.Keyboard.PressAsync("Home");
        await page.Page.WaitForFunctionAsync("t => { const m = document.querySelector('[data-testid=replay-map]'); return m.dataset.asOf && new Date(m.dataset.asOf) < new Date(t); }",
            running.GetProperty("createdAt").GetString());
        Assert.Equal(0, await page.CountAsync("[data-testid=replay-map] [data-pod-name=mover]"));

        // Clicking the strip where the host failed lists the events around that instant.
        var failedAt = (await app.AsOperator("query($f: DateTime!, $t: DateTime!) { incident(from: $f, to: $t) { events { type at } } }",
            new { f = runningAt, t = after })).ShouldSucceed().Data.GetProperty("incident").GetProperty("events").EnumerateArray()
            .First(e => e.GetProperty("type").GetString() == "host_failed").GetProperty("at").GetDateTime();
        var strip = await (await page.WaitForAsync("[data-testid=replay-strip]")).BoundingBoxAsync();
        var fraction = (failedAt - before).TotalMilliseconds / (after - before).TotalMilliseconds;
        await page.Page.Mouse.ClickAsync(strip!.X + (decimal)fraction * strip.Width, strip.Y + strip.Height / 2);
        await page.WaitForAsync("[data-testid=replay-events] li[data-event=host_failed]");
        page.ShouldHaveLoggedNoErrors();
    }

    [Fact]
    public async Task a_member_sees_its_tenants_pods_but_neither_the_operators_host_view_nor_another_tenants_pods()
    {
        var mine = await ConsoleTenant.CreateAsync(app, "mine");
        var theirs = await ConsoleTenant.CreateAsync(app, "theirs");
        var alpha = await mine.CreatePodAsync("alpha");
        await theirs.CreatePodAsync("bravo");
        await mine.WaitForPodAsync(alpha.Id(), p => p.State() == "RUNNING", "alpha runs");
        var member = await mine.TokenAsync("MEMBER");

        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(member);
        Assert.Equal("MEMBER", await page.TextAsync("[data-testid=who] .role"));
        await page.WaitForAsync("tr[data-pod-name=alpha]");
        Assert.Equal(0, await page.CountAsync("tr[data-pod-name=bravo]"));
        Assert.Equal(0, await page.CountAsync("[data-nav=hosts]"));
        Assert.Equal(0, await page.CountAsync("[data-nav=audit]"));

        await page.OpenAsync("hosts");
        await page.WaitForAsync("[data-testid=forbidden]");
        Assert.Equal(0, await page.CountAsync("[data-testid=hosts]"));

        // Replay shows the member's microVMs by (opaque) host: no zones, racks or host names, and nothing of the other tenant.
        await page.OpenAsync("replay");
        await page.WaitForAsync("[data-testid=replay-map] .vm[data-pod-name=alpha]");
        Assert.Equal(0, await page.CountAsync("[data-testid=replay-map] .zone, [data-testid=replay-map] .rack, [data-testid=replay-map] [data-host]"));
        Assert.Equal(0, await page.CountAsync("[data-testid=replay-map] [data-pod-name=bravo]"));
        await page.ScreenshotAsync("replay-member");

        // The operator, by contrast, sees both tenants' pods and the fleet.
        await using var operatorPage = await app.Browser.NewPageAsync(app.BaseAddress);
        await operatorPage.SignInAsync(KraudApp.OperatorToken);
        await operatorPage.WaitForAsync("tr[data-pod-name=bravo]");
        Assert.Equal(1, await operatorPage.CountAsync("tr[data-pod-name=alpha]"));
        await operatorPage.OpenAsync("hosts");
        await operatorPage.WaitForAsync("[data-testid=hosts] .zone .host[data-state=READY]");
        await operatorPage.ScreenshotAsync("hosts");
        page.ShouldHaveLoggedNoErrors();
        operatorPage.ShouldHaveLoggedNoErrors();
    }

    [Fact]
    public async Task markup_in_a_refused_image_and_pod_name_renders_as_text()
    {
        var tenant = await ConsoleTenant.CreateAsync(app, "markup");
        await using var page = await app.Browser.NewPageAsync(app.BaseAddress);
        await page.SignInAsync(tenant.Token);

        // An image reference is resolved at create time, so Kraud refuses one with markup; the refusal quotes it, as text.
        const string image = "<script>window.__pwned=1</script><img/src=x/onerror=window.__pwned=2>";
        await page.OpenAsync("pods/new");
        await page.WaitForAsync("[data-testid=pod-name]");
        await page.Page.TypeAsync("[data-testid=pod-name]", "tagged");
        await page.Page.TypeAsync("[data-testid=pod-image]", image);
        await page.Page.ClickAsync("[data-testid=pod-submit]");
        await page.WaitForAsync("[data-testid=create-status] .error[data-code=VALIDATION]");
        Assert.Contains(image, await page.TextAsync("[data-testid=create-status]"));
        Assert.Equal(0, await page.CountAsync("main script, main img"));

        // Pod names are DNS labels, so Kraud refuses a name with markup: the refusal, which quotes it, is text too.
        const string name = "<img src=x onerror=\"window.__pwned=3\">";
        // A fresh form: away and back (the same route again would keep the fields as they are).
        await page.OpenAsync("pods");
        await page.WaitForAsync("[data-testid=pods]");
        await page.OpenAsync("pods/new");
        await page.WaitForAsync("[data-testid=pod-name]");
        await page.Page.TypeAsync("[data-testid=pod-name]", name);
        await page.Page.TypeAsync("[data-testid=pod-image]", "nginx:1.27");
        await page.Page.ClickAsync("[data-testid=pod-submit]");
        await page.WaitForAsync("[data-testid=create-status] .error[data-code=VALIDATION]");
        Assert.Contains(name, await page.TextAsync("[data-testid=create-status]"));
        Assert.Equal(0, await page.CountAsync("main img, main script"));
        Assert.Null(await page.Page.EvaluateExpressionAsync<int?>("window.__pwned ?? null"));
        page.ShouldHaveLoggedNoErrors();
    }
}
