namespace Kraud.Projections.Audit;

/// <summary>Event headers that carry who asked and through which command (Marten metadata, set by the command pipeline).</summary>
public static class AuditHeaders
{
    public const string Actor = "actor";
    public const string Role = "role";
    public const string Tenant = "tenant";
    public const string Command = "command";
    public const string CommandId = "command-id";
    public const string ClientAddress = "client";
}
