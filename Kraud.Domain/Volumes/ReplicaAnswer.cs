namespace Kraud.Domain.Volumes;

/// <summary>
/// The deadline of a command to set up a replica. Commands travel through queues and can be lost on the way (a host
/// runtime that never handled one stays silent and alive, so host failure detection never notices); the command is
/// idempotent, so the control plane sends it again, and a host that still does not answer loses the replica to another.
/// </summary>
public static class ReplicaAnswer
{
    public enum Verdict { Answered, SendAgain, GiveUp }

    /// <param name="since">The replica the command was for (its <see cref="VolumeReplica.Since"/>): a replica placed again on the host is another one.</param>
    /// <param name="attempt">How many times the command has been sent (1: the first time).</param>
    /// <param name="attempts">How many sends the host gets before the replica fails.</param>
    public static Verdict Judge(Volume volume, Guid hostId, DateTimeOffset since, int attempt, int attempts) =>
        volume.Replica(hostId) is { } replica && replica.Since == since && volume.AwaitsAnswer(replica)
            ? attempt < attempts ? Verdict.SendAgain : Verdict.GiveUp
            : Verdict.Answered;

    /// <summary>The failure a replica gets when its host never answered: the command that failed to reach it and for how long.</summary>
    public static ReplicaFailed Unanswered(string hostName, int attempts, int seconds) =>
        new($"host {hostName} did not answer the command to set up the replica ({attempts} sent, {seconds} s each)");
}
