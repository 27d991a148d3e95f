using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Cli;

/// <summary>The kraud CLI as a process against a running Kraud: what a user types, what they see, and the exit codes scripts rely on.</summary>
[Collection(CliCollection.Name)]
public sealed class CliSpecs(KraudProcess kraud) : IDisposable
{
    private readonly KraudCli _cli = new();

    [Fact]
    public async Task login_keeps_the_context_in_a_file_only_its_owner_can_read_and_a_wrong_token_is_refused_with_the_api_code()
    {
        var refused = await _cli.RunAsync("login", "--url", kraud.Url, "--token", "krd_not_a_token");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("UNAUTHENTICATED", refused.Stderr);
        Assert.False(File.Exists(_cli.ConfigFile), "a refused token is not kept");

        var ok = (await _cli.RunAsync("login", "--url", kraud.Url, "--token", KraudProcess.OperatorToken, "--context", "lab")).ShouldSucceed();
        Assert.Contains("OPERATOR", ok.Stdout);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_cli.ConfigFile));
        Assert.Contains(KraudProcess.OperatorToken, await File.ReadAllTextAsync(_cli.ConfigFile));

        var contexts = JsonDocument.Parse((await _cli.RunAsync("context", "list", "-o", "json")).ShouldSucceed().Stdout).RootElement;
        var lab = Assert.Single(contexts.EnumerateArray());
        Assert.Equal("lab", lab.GetProperty("name").GetString());
        Assert.True(lab.GetProperty("current").GetBoolean());
        Assert.Equal(2, (await _cli.RunAsync("context", "use", "nowhere")).ExitCode);

        // KRAUD_URL and KRAUD_TOKEN win over the context: a bad token there fails even though the context is good.
        var overridden = await _cli.RunAsync(["whoami"], new Dictionary<string, string> { ["KRAUD_TOKEN"] = "krd_wrong" });
        Assert.Equal(1, overridden.ExitCode);
        Assert.Contains("UNAUTHENTICATED", overridden.Stderr);
    }

    [Fact]
    public async Task a_pod_created_with_wait_runs_is_listed_as_json_and_yaml_and_deleted()
    {
        await _cli.LoginAsNewTenantAdminAsync(kraud);

        var created = (await _cli.RunAsync("pods", "create", "web", "--image", "nginx:1.27", "--replicas", "2", "--cpu", "1", "--memory-mib", "256",
            "-e", "MODE=prod", "--command", "nginx", "--command", "-g", "--wait")).ShouldSucceed();
        Assert.Contains("pod web is RUNNING: 2 of 2 replicas", created.Stdout);
        Assert.DoesNotContain("\u001b[", created.Stdout); // no live progress or colours when stdout is not a terminal
        Assert.DoesNotContain("REPLICA", created.Stdout);

        var listed = JsonDocument.Parse((await _cli.RunAsync("pods", "list", "-o", "json")).ShouldSucceed().Stdout).RootElement;
        var web = Assert.Single(listed.EnumerateArray());
        Assert.Equal("web", web.GetProperty("name").GetString());
        Assert.Equal("RUNNING", web.GetProperty("state").GetString());
        Assert.Equal(2, web.GetProperty("instances").EnumerateArray().Count(i => i.GetProperty("state").GetString() == "RUNNING"));
        Assert.Equal(["nginx", "-g"], web.GetProperty("command").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal("prod", web.GetProperty("env").GetProperty("MODE").GetString());

        var yaml = (await _cli.RunAsync("pods", "get", "web", "-o", "yaml")).ShouldSucceed().Stdout;
        Assert.Contains("name: web", yaml);
        Assert.Contains("state: RUNNING", yaml);

        var table = (await _cli.RunAsync("pods", "list")).ShouldSucceed().Stdout;
        Assert.Matches(@"web\s+default\s+nginx:1\.27\s+2/2\s+RUNNING", table);

        (await _cli.RunAsync("pods", "delete", "web")).ShouldSucceed();
        var gone = await Eventually.Get(async () => JsonDocument.Parse((await _cli.RunAsync("pods", "list", "--all", "-o", "json")).ShouldSucceed().Stdout)
            .RootElement.EnumerateArray().Single().GetProperty("state").GetString(), s => s == "STOPPED", TimeSpan.FromSeconds(60), "the pod stopped");
        Assert.Equal("STOPPED", gone);
    }

    [Fact]
    public async Task errors_print_the_api_code_and_message_and_exit_non_zero()
    {
        await _cli.LoginAsNewTenantAdminAsync(kraud);
        var missing = await _cli.RunAsync("pods", "get", Guid.NewGuid().ToString());
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith("error: NOT_FOUND: ", missing.Stderr);
        Assert.Equal("", missing.Stdout);

        var invalid = await _cli.RunAsync("pods", "create", "Bad_Name!", "--image", "nginx", "--cpu", "0");
        Assert.Equal(1, invalid.ExitCode);
        Assert.StartsWith("error: VALIDATION: ", invalid.Stderr);

        var forbidden = await _cli.RunAsync("hosts", "list");
        Assert.Equal(1, forbidden.ExitCode);
        Assert.StartsWith("error: FORBIDDEN: ", forbidden.Stderr);

        var usage = await _cli.RunAsync("pods", "create", "web");
        Assert.NotEqual(0, usage.ExitCode);
        Assert.Contains("--image", usage.Stderr);
    }

    [Fact]
    public async Task an_audit_export_verifies_offline_and_a_changed_line_is_caught()
    {
        await _cli.LoginAsNewTenantAdminAsync(kraud);
        (await _cli.RunAsync("pods", "create", "audited", "--image", "nginx", "--wait")).ShouldSucceed();
        (await _cli.RunAsync("context", "use", "op")).ShouldSucceed();
        var file = Path.Combine(_cli.Home, "audit.jsonl");

        var exported = (await _cli.RunAsync("audit", "export", "--file", file)).ShouldSucceed();
        Assert.Matches(@"exported \d+ entries \(", exported.Stdout);
        var verified = (await _cli.RunAsync("audit", "verify", file)).ShouldSucceed();
        Assert.StartsWith("VALID: ", verified.Stdout);
        (await _cli.RunAsync("audit", "verify")).ShouldSucceed();

        var lines = await File.ReadAllLinesAsync(file);
        lines[0] = lines[0].Replace("\"outcome\":\"", "\"outcome\":\"x");
        await File.WriteAllLinesAsync(file, lines);
        var tampered = await _cli.RunAsync("audit", "verify", file);
        Assert.Equal(1, tampered.ExitCode);
        Assert.StartsWith("error: TAMPERED: line 1", tampered.Stderr);
    }

    [Fact]
    public async Task on_a_terminal_lists_are_tables_and_waiting_shows_each_replica()
    {
        await _cli.LoginAsNewTenantAdminAsync(kraud);
        var created = (await _cli.RunOnTerminalAsync("pods", "create", "tty", "--image", "nginx", "--replicas", "2", "--wait")).ShouldSucceed();
        Assert.Contains("REPLICA", created.Stdout); // the live table of replica states
        Assert.Contains("RUNNING", created.Stdout);
        var listed = (await _cli.RunOnTerminalAsync("pods", "list")).ShouldSucceed();
        Assert.Contains("╭", listed.Stdout);
        Assert.Contains("tty", listed.Stdout);
    }

    [Fact]
    public async Task pods_logs_prints_the_workloads_lines_by_stream_replica_and_tail_and_follow_prints_new_lines_until_the_pod_is_deleted()
    {
        var tenant = Guid.Parse(await _cli.LoginAsNewTenantAdminAsync(kraud));
        var pod = JsonDocument.Parse((await _cli.RunAsync("pods", "create", "logger", "--image", "nginx:1.27", "--replicas", "2", "--memory-mib", "256",
            "--wait", "-o", "json")).ShouldSucceed().Stdout).RootElement;
        var podId = Guid.Parse(pod.GetProperty("id").GetString()!);
        var vms = pod.GetProperty("instances").EnumerateArray().Select(i => Guid.Parse(i.GetProperty("id").GetString()!)).ToList();
        // The simulated hosts run no workload: the test ships its lines as a host runtime does, with the host's own shipper.
        using var shipper = new Kraud.HostRuntime.Logs.WorkloadLogShipper(kraud.ConnectionString,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Kraud.HostRuntime.Logs.WorkloadLogShipper>.Instance);
        async Task ShipAsync(int replica, string stream, string line)
        {
            shipper.Enqueue(new Kraud.HostRuntime.Logs.WorkloadLogLine(tenant, podId, vms[replica], replica, DateTimeOffset.UtcNow, stream, line));
            await shipper.FlushAsync(CancellationToken.None);
        }
        await ShipAsync(0, "stdout", "first of replica 0");
        await ShipAsync(1, "stdout", "first of replica 1");
        await ShipAsync(0, "stderr", "a warning of replica 0");

        var all = (await _cli.RunAsync("pods", "logs", "logger")).ShouldSucceed();
        Assert.Equal(["[0] first of replica 0", "[1] first of replica 1"], Lines(all.Stdout));
        Assert.Equal(["[0] a warning of replica 0"], Lines(all.Stderr));
        var one = (await _cli.RunAsync("pods", "logs", "logger", "--replica", "1", "--timestamps")).ShouldSucceed();
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z first of replica 1$", Assert.Single(Lines(one.Stdout)));
        Assert.Empty(one.Stderr);
        var tail = (await _cli.RunAsync("pods", "logs", pod.GetProperty("id").GetString()!, "--tail", "1")).ShouldSucceed();
        Assert.Empty(Lines(tail.Stdout));
        Assert.Equal(["[0] a warning of replica 0"], Lines(tail.Stderr));
        var json = Lines((await _cli.RunAsync("pods", "logs", "logger", "-o", "json")).ShouldSucceed().Stdout).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["stdout", "stdout", "stderr"], json.Select(l => l.GetProperty("stream").GetString()));
        Assert.Equal(vms[1].ToString(), json[1].GetProperty("microVmId").GetString());
        Assert.Equal(2, (await _cli.RunAsync("pods", "logs", "logger", "--tail", "-1")).ExitCode);

        await using var follow = _cli.Start("pods", "logs", "logger", "--follow", "--replica", "0");
        await follow.UntilPrintedAsync("first of replica 0", TimeSpan.FromSeconds(60));
        await ShipAsync(0, "stdout", "later of replica 0");
        await ShipAsync(1, "stdout", "later of replica 1");
        await follow.UntilPrintedAsync("later of replica 0", TimeSpan.FromSeconds(30));
        Assert.False(follow.HasExited, "--follow keeps following");
        (await _cli.RunAsync("pods", "delete", "logger")).ShouldSucceed();
        var followed = await follow.ExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, followed.ExitCode);
        Assert.Equal(["first of replica 0", "later of replica 0"], Lines(followed.Stdout));

        // Another tenant's admin finds no such pod, and sees none of its lines.
        using var stranger = new KraudCli();
        await stranger.LoginAsNewTenantAdminAsync(kraud);
        var refused = await stranger.RunAsync("pods", "logs", podId.ToString());
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("NOT_FOUND", refused.Stderr);
        Assert.DoesNotContain("replica", refused.Stdout);
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public void Dispose() => _cli.Dispose();
}
