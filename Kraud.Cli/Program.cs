using System.CommandLine;
using Kraud.Cli.Commands;
using Kraud.Cli.Infrastructure;

var root = new RootCommand("kraud: the command line of the Kraud microVM platform");
root.Options.Add(Cli.OutputOption);
root.Subcommands.Add(LoginCommands.Login());
root.Subcommands.Add(LoginCommands.Context());
root.Subcommands.Add(PodCommands.Build());
return await root.Parse(args).InvokeAsync();
