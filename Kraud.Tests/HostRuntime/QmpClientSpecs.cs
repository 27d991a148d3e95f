using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.HostRuntime;

/// <summary>
/// The QMP plumbing the guests' quorum reports rely on, against a QEMU with no guest (machine none): a quorum over three
/// local files, one of which differs in one block, read through the command monitor; a second monitor only listens.
/// </summary>
public sealed class QmpClientSpecs : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"kraud-qmp-{Guid.NewGuid():N}"[..23]);
    private Process? _qemu;

    [Fact]
    public async Task a_listening_monitor_gets_the_quorums_report_of_an_outvoted_child_and_the_command_monitor_rereads_a_block_with_qemu_io()
    {
        Directory.CreateDirectory(_dir);
        for (var i = 0; i < 3; i++)
        {
            await using var file = new FileStream(Path.Combine(_dir, $"r{i}.raw"), FileMode.Create);
            file.SetLength(16 << 20);
            if (i != 1) continue;
            file.Position = 4 << 20;
            await file.WriteAsync(RandomNumberGenerator.GetBytes(64 << 10));
        }
        var (commands, events) = (QmpClient.SocketPathFor(Path.Combine(_dir, "c")), QmpClient.SocketPathFor(Path.Combine(_dir, "e")));
        var start = new ProcessStartInfo(ProcessRunner.Which("qemu-system-x86_64") ?? throw new InvalidOperationException("QEMU is not installed"))
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var arg in new[] { "-machine", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{commands},server=on,wait=off",
                     "-qmp", $"unix:{events},server=on,wait=off" })
            start.ArgumentList.Add(arg);
        for (var i = 0; i < 3; i++)
        {
            start.ArgumentList.Add("-blockdev");
            start.ArgumentList.Add($"driver=file,node-name=f{i},filename={Path.Combine(_dir, $"r{i}.raw")}");
        }
        start.ArgumentList.Add("-blockdev");
        start.ArgumentList.Add("driver=quorum,node-name=q,vote-threshold=2,read-pattern=quorum,children.0=f0,children.1=f1,children.2=f2");
        _qemu = Process.Start(start)!;
        _qemu.OutputDataReceived += (_, _) => { };
        _qemu.ErrorDataReceived += (_, _) => { };
        _qemu.BeginOutputReadLine();
        _qemu.BeginErrorReadLine();

        await using var command = await QmpClient.ConnectAsync(commands, TimeSpan.FromSeconds(20), CancellationToken.None);
        await using var listener = await QmpClient.ConnectAsync(events, TimeSpan.FromSeconds(20), CancellationToken.None);
        var next = listener.NextEventAsync(CancellationToken.None);
        await command.ExecuteAsync("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "qemu-io q \"read -q 0 65536\"" }, CancellationToken.None);
        await Task.Delay(300);
        Assert.False(next.IsCompleted); // equal blocks: nobody is outvoted

        await command.ExecuteAsync("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "qemu-io q \"read -q 4194304 65536\"" },
            CancellationToken.None);
        var report = await next.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("QUORUM_REPORT_BAD", report.GetProperty("event").GetString());
        var data = report.GetProperty("data");
        Assert.Equal(("f1", 8192L, 128L), (data.GetProperty("node-name").GetString(), data.GetProperty("sector-num").GetInt64(),
            data.GetProperty("sectors-count").GetInt64()));
        Assert.False(data.TryGetProperty("error", out _));
        // The command monitor saw it too (QEMU sends events to every monitor) and keeps it for whoever asks.
        Assert.Single(command.TakeEvents(e => e.GetProperty("event").GetString() == "QUORUM_REPORT_BAD"));
        Assert.Equal(JsonValueKind.Object, report.ValueKind);
    }

    [Fact]
    public void removing_a_state_directorys_sockets_removes_every_monitors_socket_of_it_and_its_subdirectories_and_no_other()
    {
        var vm = Directory.CreateDirectory(Path.Combine(_dir, "vms", "a")).FullName;
        var other = Path.Combine(Path.GetTempPath(), $"kraud-qmp-other-{Guid.NewGuid():N}");
        // A killed QEMU leaves both of its monitors' sockets; plain files stand for them here.
        string[] ours = [QmpClient.SocketPathFor(_dir), QmpClient.SocketPathFor(vm), QmpClient.SocketPathFor(vm, "events")];
        var theirs = QmpClient.SocketPathFor(other, "events");
        foreach (var socket in ours.Append(theirs)) File.WriteAllText(socket, "");
        try
        {
            QmpClient.RemoveSocketsUnder(_dir);
            Assert.All(ours, socket => Assert.False(File.Exists(socket), socket));
            Assert.True(File.Exists(theirs));
        }
        finally
        {
            File.Delete(theirs);
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_qemu is { HasExited: false })
        {
            _qemu.Kill();
            await _qemu.WaitForExitAsync();
        }
        _qemu?.Dispose();
        QmpClient.RemoveSocketsUnder(_dir);
        foreach (var name in new[] { "c", "e" }) File.Delete(QmpClient.SocketPathFor(Path.Combine(_dir, name)));
        StateDirectories.Remove(_dir);
    }
}
