using Kraud.Bench;

// Kraud benchmarks. Each prints a table beside the baseline it names.
//   dotnet run -c Release --project bench/Kraud.Bench -- pods     [--pods 500] [--hosts 20] [--concurrency 8] [--replicas 1] [--durable true]
//   dotnet run -c Release --project bench/Kraud.Bench -- pods     --pods 1000 --hosts 100   (issue 3's scheduler measurement)
//   dotnet run -c Release --project bench/Kraud.Bench -- pods     --pods 1000 --hosts 500 --existing 10000 --concurrency 32   (issue 17: flatness, memory, pgbench)
//   dotnet run -c Release --project bench/Kraud.Bench -- recovery [--pods 1000] [--hosts 100]
//   dotnet run -c Release --project bench/Kraud.Bench -- volumes  [--pods 500] [--storage 12] [--concurrency 8]   (--pods counts volumes)
//   dotnet run -c Release --project bench/Kraud.Bench -- audit    [--events 1000000] [--live 5000] [--read-models true]   (issue 21)
//   dotnet run -c Release --project bench/Kraud.Bench -- boot     [--runs 8]   (real microVMs; needs QEMU and the guest image)
//   dotnet run -c Release --project bench/Kraud.Bench -- images   [--runs 3]   (issue 15; real microVMs, a registry, skopeo and umoci)
//   dotnet run -c Release --project bench/Kraud.Bench -- blockio  (a guest's I/O on a BLOCK volume of real exports beside a local LUKS disk; resync MB/s)
//   dotnet run -c Release --project bench/Kraud.Bench -- gfs      (a GFS volume's NFS I/O from another host beside a BLOCK volume; its file server's failover; root, real guests)
//   dotnet run -c Release --project bench/Kraud.Bench -- mesh     [--pods 1000] [--replicas 5] [--tenants 250] [--hosts 100]   (issue 5)
//   dotnet run -c Release --project bench/Kraud.Bench -- dataplane [--runs 8]   (issue 16: WireGuard VPC vs plain bridge, ingress vs direct; root, real guests)
//   dotnet run -c Release --project bench/Kraud.Bench -- kubectl  [--pods 100] [--hosts 20]   (issue 23: kubectl apply of N Deployments beside GraphQL)
//   dotnet run -c Release --project bench/Kraud.Bench -- nodes    [--pods 1000] [--hosts 4] [--concurrency 8]   (issue 18: 1-3 API node processes, handovers, rolling restart)
var options = Options.Parse(args);
return (options.Help, options.Benchmark) switch
{
    (false, "pods") => await PodsBench.RunAsync(options),
    (false, "recovery") => await RecoveryBench.RunAsync(options),
    (false, "audit") => await AuditBench.RunAsync(options),
    (false, "volumes") => await VolumesBench.RunAsync(options),
    (false, "boot") => await BootBench.RunAsync(options),
    (false, "mesh") => await MeshBench.RunAsync(options),
    (false, "images") => await ImagesBench.RunAsync(options),
    (false, "blockio") => await BlockIoBench.RunAsync(options),
    (false, "gfs") => await GfsBench.RunAsync(options),
    (false, "dataplane") => await DataPlaneBench.RunAsync(options),
    (false, "kubectl") => await KubectlBench.RunAsync(options),
    (false, "nodes") => await NodesBench.RunAsync(options),
    _ => Usage(options.Help),
};

static int Usage(bool asked)
{
    Console.WriteLine("usage: Kraud.Bench pods|recovery|audit|boot|volumes|mesh|images|blockio|gfs|dataplane|kubectl|nodes [--pods N] [--storage S] [--hosts H] [--concurrency C] [--replicas R] [--tenants T] [--events E] [--live L] [--read-models true|false] [--runs N] [--existing N] [--durable true|false] [--kvm true|false]");
    return asked ? 0 : 2;
}
