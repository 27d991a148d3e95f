using Kraud.HostRuntime.Drivers.Qemu;

namespace Kraud.Tests.HostRuntime;

/// <summary>The runner of short-lived helper commands (CliWrap underneath): bounded, fed, and told what environment to drop.</summary>
public sealed class ProcessRunnerSpecs
{
    [Fact]
    public async Task a_command_gets_its_input_and_environment_and_its_output_and_exit_code_come_back_apart()
    {
        var result = await ProcessRunner.RunAsync("sh", ["-c", "read line; echo \"$line ${KRAUD_SPEC_VAR} ${HOME-no-home}\"; echo oops >&2; exit 3"],
            TimeSpan.FromSeconds(30), CancellationToken.None, stdin: "fed\n",
            environment: new Dictionary<string, string?> { ["KRAUD_SPEC_VAR"] = "set", ["HOME"] = null });

        Assert.Equal(3, result.ExitCode);
        Assert.Equal("fed set no-home\n", result.Output);
        Assert.Equal("oops\n", result.Error);
    }

    [Fact]
    public async Task a_command_that_outlasts_its_timeout_is_killed_and_the_failure_says_what_it_printed()
    {
        var pidFile = Path.Combine(Path.GetTempPath(), $"kraud-runner-{Guid.NewGuid():N}");
        try
        {
            var failure = await Assert.ThrowsAsync<TimeoutException>(() => ProcessRunner.RunAsync("sh", ["-c", $"echo $$ > {pidFile}; echo started; exec sleep 600"],
                TimeSpan.FromMilliseconds(1500), CancellationToken.None));

            Assert.Contains("did not finish within 2 s and was killed; it printed: started", failure.Message);
            var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.False(ProcessExit.IsAlive(pid), $"the command is {ProcessExit.StateOf(pid)}");
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    [Fact]
    public async Task a_program_that_does_not_exist_fails_with_its_name()
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => ProcessRunner.RunAsync("/nonexistent/kraud-no-such-tool", [], TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.Contains("kraud-no-such-tool", failure.Message);
    }
}
