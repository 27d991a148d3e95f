using System.Security.Cryptography;

namespace Kraud.Tests.Infrastructure;

/// <summary>Silent rot: random bytes written into a replica's file behind its storage daemon's back, with no I/O error anywhere.</summary>
public static class ReplicaRot
{
    /// <summary>Rots <paramref name="length"/> bytes of <paramref name="replicaFile"/> from <paramref name="at"/>, and returns <paramref name="at"/>.</summary>
    public static async Task<long> WriteAsync(string replicaFile, long at, int length)
    {
        await using var file = new FileStream(replicaFile, FileMode.Open, FileAccess.Write);
        file.Position = at;
        await file.WriteAsync(RandomNumberGenerator.GetBytes(length));
        file.Flush(flushToDisk: true);
        return at;
    }

    /// <summary>Where a fraction of the way into the file is, e.g. half way: <c>At(file, 1, 2)</c>.</summary>
    public static long At(string replicaFile, int numerator, int denominator) => new FileInfo(replicaFile).Length * numerator / denominator;
}
