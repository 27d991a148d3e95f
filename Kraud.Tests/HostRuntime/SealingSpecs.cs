using System.Security.Cryptography;
using Kraud.Api.Kubernetes.ClusterApi;
using Kraud.Domain.Common;
using Kraud.HostRuntime.Storage;
using Microsoft.Extensions.Configuration;

namespace Kraud.Tests.HostRuntime;

/// <summary>How Kraud seals secrets (<see cref="Aead"/>) and keeps its keys (<see cref="KeyFile"/>).</summary>
public sealed class SealingSpecs : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), $"kraud-sealing-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void a_sealed_secret_opens_only_with_its_key_and_for_what_it_was_sealed_for()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var sealedBytes = Aead.Seal(key, "hunter2"u8, "volume-1"u8);

        Assert.Equal("hunter2"u8.ToArray(), Aead.Open(key, sealedBytes, "volume-1"u8));
        Assert.ThrowsAny<CryptographicException>(() => Aead.Open(key, sealedBytes, "volume-2"u8));
        Assert.ThrowsAny<CryptographicException>(() => Aead.Open(RandomNumberGenerator.GetBytes(32), sealedBytes, "volume-1"u8));
        sealedBytes[^1] ^= 1;
        Assert.ThrowsAny<CryptographicException>(() => Aead.Open(key, sealedBytes, "volume-1"u8));
        Assert.ThrowsAny<CryptographicException>(() => Aead.Open(key, sealedBytes.AsSpan(0, 20), "volume-1"u8));
    }

    [Fact]
    public async Task processes_that_make_a_key_file_at_once_all_get_the_same_key_readable_only_by_its_owner()
    {
        var path = Path.Combine(directory, "keys", "kek");
        var keys = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => KeyFile.LoadOrCreate(path))));

        Assert.Single(keys.Select(Convert.ToBase64String).Distinct());
        Assert.Equal(32, keys[0].Length);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal([path], Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void a_kubernetes_secret_sealed_before_the_common_layout_still_opens()
    {
        var path = Path.Combine(directory, "k8s-secret-key");
        var seal = SecretSeal.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Kubernetes:SecretKeyFile"] = path }).Build());
        var objectId = Guid.NewGuid();
        Assert.Equal("s3cret", seal.Open(seal.Seal(new Dictionary<string, string> { ["PASSWORD"] = "s3cret" }, objectId), objectId)["PASSWORD"]);

        // The layout before: nonce, tag, then the ciphertext.
        var plain = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["PASSWORD"] = "old" });
        var (nonce, tag, cipher) = (RandomNumberGenerator.GetBytes(12), new byte[16], new byte[plain.Length]);
        using (var aes = new AesGcm(KeyFile.LoadOrCreate(path), 16)) aes.Encrypt(nonce, plain, cipher, tag, objectId.ToByteArray());
        Assert.Equal("old", seal.Open(Convert.ToBase64String([.. nonce, .. tag, .. cipher]), objectId)["PASSWORD"]);
    }
}
