using System.CommandLine;
using Kraud.Domain.Fleet;

namespace Kraud.HostRuntime.Configuration;

/// <summary>
/// The standalone host runtime's command line (System.CommandLine): the host's definition as typed options, so a wrong
/// number or role is refused with the option's name before anything starts, and `--help` lists them; `guest-image`
/// as a subcommand. Any other `--Section:Key value` goes on to configuration unchanged, as .NET's command-line
/// provider reads it (e.g. `--Fleet:SevSnp:AuthorityDirectory dir`).
/// </summary>
public static class HostCommandLine
{
    /// <summary>Each option and the configuration key it sets (the keys the host runtime reads, as before).</summary>
    private static readonly (Option Option, string Key)[] HostOptions =
    [
        (new Option<string>("--host") { Description = "The host this runtime serves (its Fleet:Hosts entry, or a new host)" }, "Host:Name"),
        (new Option<string>("--zone") { Description = "Its zone, e.g. fsn1-a" }, "Host:Zone"),
        (new Option<string>("--rack") { Description = "Its rack" }, "Host:Rack"),
        (new Option<HostRole>("--role") { Description = "Compute, Storage or Ingress" }, "Host:Role"),
        (new Option<int>("--cpu") { Description = "vCPUs it offers" }, "Host:Cpu"),
        (new Option<int>("--memory-mib") { Description = "Memory it offers, MiB" }, "Host:MemoryMiB"),
        (new Option<int>("--nvme-gib") { Description = "NVMe it offers to volumes (storage hosts), GiB" }, "Host:NvmeGiB"),
        (new Option<bool>("--sev-snp") { Description = "An AMD SEV-SNP host (confidential pods)", Arity = ArgumentArity.ZeroOrOne }, "Host:SevSnp"),
        (new Option<string>("--driver") { Description = "simulated (default) or qemu-microvm" }.AcceptOnlyFromAmong("simulated", "qemu-microvm"),
            "Host:Driver"),
        (new Option<string>("--state-dir") { Description = "Where the runtime keeps its state" }, "Kraud:StateDirectory"),
        (new Option<string>("--kek-file") { Description = "The fleet's key-encryption key, the same file for every host runtime" },
            "Fleet:KeyEncryptionKeyFile"),
    ];

    /// <param name="runHost">Runs the host runtime with the configuration arguments the command line amounts to.</param>
    /// <param name="guestImage">Builds the guest image: guest directory, kernel package, state directory.</param>
    public static RootCommand Build(Func<string[], CancellationToken, Task<int>> runHost, Func<string?, string?, string?, CancellationToken, Task<int>> guestImage)
    {
        var root = new RootCommand("A Kraud host runtime for one physical host: registers it, listens on its queue, boots what is placed on it.")
        {
            // Configuration overrides (--Section:Key value) are not options of ours: they go to configuration.
            TreatUnmatchedTokensAsErrors = false,
        };
        foreach (var (option, _) in HostOptions) root.Options.Add(option);
        root.SetAction((parsed, ct) => runHost(ConfigurationArgs(parsed), ct));

        var guestDir = new Option<string>("--guest-dir") { Description = "Where the guest image is cached (default: <state>/guest)" };
        var kernelPackage = new Option<string>("--kernel-package") { Description = "The exact kernel package, e.g. linux-image-6.1.0-28-cloud-amd64" };
        var stateDir = new Option<string>("--state-dir") { Description = "The runtime's state directory" };
        var image = new Command("guest-image", "Builds (or finds in its cache) the guest image the qemu-microvm driver boots, and prints where it is")
        {
            guestDir, kernelPackage, stateDir,
        };
        image.SetAction((parsed, ct) => guestImage(parsed.GetValue(guestDir), parsed.GetValue(kernelPackage), parsed.GetValue(stateDir), ct));
        root.Subcommands.Add(image);
        return root;
    }

    /// <summary>The command line as configuration arguments: each given option as its key, then everything else unchanged.</summary>
    public static string[] ConfigurationArgs(ParseResult parsed)
    {
        var args = new List<string>();
        foreach (var (option, key) in HostOptions)
        {
            if (parsed.GetResult(option) is not { Implicit: false } given) continue;
            var value = given.Tokens.Count == 0 ? "true" : given.Tokens[^1].Value; // a bare --sev-snp means true
            if (option.ValueType == typeof(HostRole)) value = parsed.GetValue((Option<HostRole>)option).ToString();
            args.Add($"--{key}={value}");
        }
        args.AddRange(parsed.UnmatchedTokens);
        return [.. args];
    }
}
