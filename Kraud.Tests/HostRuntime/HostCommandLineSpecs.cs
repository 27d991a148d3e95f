using System.CommandLine;
using Kraud.HostRuntime.Configuration;

namespace Kraud.Tests.HostRuntime;

/// <summary>The standalone host runtime's command line: what it hands to configuration, and what it refuses before anything starts.</summary>
public class HostCommandLineSpecs
{
    private static (int ExitCode, string[]? Configuration, string Errors) Run(params string[] args)
    {
        string[]? configuration = null;
        var root = HostCommandLine.Build((c, _) =>
        {
            configuration = c;
            return Task.FromResult(0);
        }, (_, _, _, _) => Task.FromResult(0));
        var errors = new StringWriter();
        var code = root.Parse(args).Invoke(new InvocationConfiguration { Error = errors, Output = new StringWriter() });
        return (code, configuration, errors.ToString());
    }

    [Fact]
    public void the_host_definition_becomes_the_configuration_keys_the_runtime_reads()
    {
        var (code, configuration, _) = Run("--host", "fsn1-a-c9", "--zone", "fsn1-a", "--rack", "a1", "--role", "storage", "--cpu", "16",
            "--memory-mib", "65536", "--nvme-gib", "512", "--sev-snp", "--driver", "qemu-microvm", "--state-dir", "/var/lib/kraud", "--kek-file", "/k");

        Assert.Equal(0, code);
        Assert.Equal(
        [
            "--Host:Name=fsn1-a-c9", "--Host:Zone=fsn1-a", "--Host:Rack=a1", "--Host:Role=Storage", "--Host:Cpu=16", "--Host:MemoryMiB=65536",
            "--Host:NvmeGiB=512", "--Host:SevSnp=true", "--Host:Driver=qemu-microvm", "--Kraud:StateDirectory=/var/lib/kraud",
            "--Fleet:KeyEncryptionKeyFile=/k",
        ], configuration!);
    }

    [Fact]
    public void options_not_given_are_left_to_configuration_and_other_settings_pass_through()
    {
        var (code, configuration, _) = Run("--host", "h1", "--sev-snp", "false", "--Fleet:SevSnp:AuthorityDirectory", "/authority");

        Assert.Equal(0, code);
        Assert.Equal(["--Host:Name=h1", "--Host:SevSnp=false", "--Fleet:SevSnp:AuthorityDirectory", "/authority"], configuration!);
    }

    [Theory]
    [InlineData("--cpu", "sixteen", "--cpu")]
    [InlineData("--role", "Gpu", "--role")]
    [InlineData("--driver", "firecracker", "firecracker")]
    public void a_wrong_value_is_refused_with_the_option_before_the_runtime_starts(string option, string value, string named)
    {
        var (code, configuration, errors) = Run("--host", "h1", option, value);

        Assert.NotEqual(0, code);
        Assert.Null(configuration);
        Assert.Contains(named, errors, StringComparison.Ordinal);
    }
}
