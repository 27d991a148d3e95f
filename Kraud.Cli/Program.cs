using System.CommandLine;
using Kraud.Cli.Commands;
using Kraud.Cli.Infrastructure;

namespace Kraud.Cli;

internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("kraud: the command line of the Kraud microVM platform").With(
            LoginCommands.Login(), LoginCommands.Context(), AccessCommands.WhoAmI(),
            PodCommands.Build(), VolumeCommands.Build(), IngressCommands.Build(),
            AccessCommands.Tenants(), AccessCommands.Tokens(), HostCommands.Build(),
            AuditCommands.Build(), ReplayCommands.Timeline(), ReplayCommands.Incident(), ReplayCommands.PlatformAt(), ReplayCommands.Rebuild(),
            ComposeCommands.Up(), ComposeCommands.Down());
        root.Options.Add(CliCommand.OutputOption);
        return await root.Parse(args).InvokeAsync();
    }
}
