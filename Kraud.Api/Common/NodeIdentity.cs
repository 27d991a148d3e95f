namespace Kraud.Api.Common;

/// <summary>
/// Who this control-plane node is, under a name that survives restarts: <c>Kraud:NodeId</c>, else the machine's name
/// and the port it serves (two nodes on one machine listen on different ports). Wolverine names each process anew
/// (a fresh node id and number per start); <see cref="ControlPlaneNode"/> records which process was which node.
/// </summary>
public sealed record NodeIdentity(string Name)
{
    public static NodeIdentity From(IConfiguration configuration)
    {
        if (configuration["Kraud:NodeId"] is { Length: > 0 } configured) return new NodeIdentity(configured);
        var urls = configuration["urls"] ?? configuration["ASPNETCORE_URLS"] ?? configuration["http_ports"] ?? "";
        var port = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(u => u.Contains("://", StringComparison.Ordinal) ? u[(u.LastIndexOf(':') + 1)..].TrimEnd('/') : u)
            .FirstOrDefault(p => p.Length > 0 && p != "0");
        return new NodeIdentity($"{Environment.MachineName}:{port ?? "5000"}");
    }
}
