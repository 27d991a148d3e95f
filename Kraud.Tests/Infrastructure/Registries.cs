using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Kraud.Api.Images;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.HostRuntime.Images;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Kraud.Tests.Infrastructure;

/// <summary>
/// A real registry (Debian's docker-registry) a test starts on 127.0.0.1 and a free port, anonymous or with a login:
/// HTTP Basic against an htpasswd file, or Bearer tokens from <see cref="TokenServer"/>, as the Distribution spec has
/// them. Its storage is a temporary directory, removed with it.
/// </summary>
public sealed class TestRegistry : IAsyncDisposable
{
    private readonly EmbeddedRegistry _registry;
    private readonly TokenServer? _tokens;
    private readonly string _directory;

    private TestRegistry(EmbeddedRegistry registry, string directory, RegistryAuth? login, TokenServer? tokens)
    {
        _registry = registry;
        _directory = directory;
        Login = login;
        _tokens = tokens;
    }

    public string HostPort => _registry.HostPort;

    /// <summary>The user that may push and pull (null: anonymous registry).</summary>
    public RegistryAuth? Login { get; }

    /// <summary>What Kraud needs to speak plain HTTP to it (and to its token service).</summary>
    public IReadOnlyList<string> Insecure => _tokens is null ? [HostPort] : [HostPort, _tokens.HostPort];

    public static async Task<TestRegistry> StartAsync(string kind = "anonymous")
    {
        Require("docker-registry", "docker-registry");
        var directory = Directory.CreateTempSubdirectory("kraud-registry-").FullName;
        var login = kind == "anonymous" ? null : new RegistryAuth($"user-{Guid.NewGuid():N}"[..13], $"pw-{Guid.NewGuid():N}");
        TokenServer? tokens = null;
        RegistryAccess? access = null;
        switch (kind)
        {
            case "htpasswd":
                var htpasswd = Path.Combine(directory, "htpasswd");
                await File.WriteAllTextAsync(htpasswd, $"{login!.Username}:{BCrypt.Net.BCrypt.HashPassword(login.Password, 5)}\n");
                access = new HtpasswdAccess(htpasswd);
                break;
            case "token":
                tokens = await TokenServer.StartAsync(login!, directory);
                access = new TokenAccess(tokens.Realm, TokenServer.Service, TokenServer.Issuer, tokens.CertificateFile);
                break;
        }
        var registry = await EmbeddedRegistry.StartAsync(Path.Combine(directory, "registry"), access);
        return new TestRegistry(registry, directory, login, tokens);
    }

    /// <summary>Registry options for Kraud's clients: this registry (and its token service) over plain HTTP.</summary>
    public RegistryOptions Options() => new() { InsecureRegistries = [.. Insecure] };

    public async ValueTask DisposeAsync()
    {
        await _registry.DisposeAsync();
        if (_tokens is not null) await _tokens.DisposeAsync();
        if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
    }

    /// <summary>
    /// Changes bytes in the middle of a blob the registry stores (its size stays), as a broken disk or a hostile mirror
    /// would: the registry serves them as they are.
    /// </summary>
    public void CorruptBlob(string digest)
    {
        var data = Directory.EnumerateFiles(_directory, "data", SearchOption.AllDirectories)
            .Single(f => Path.GetFileName(Path.GetDirectoryName(f)) == digest[7..] && f.Contains("/blobs/sha256/", StringComparison.Ordinal));
        using var file = new FileStream(data, FileMode.Open, FileAccess.ReadWrite);
        file.Position = file.Length / 2;
        var middle = new byte[64];
        file.ReadExactly(middle);
        for (var i = 0; i < middle.Length; i++) middle[i] ^= 0x5A;
        file.Position = file.Length / 2;
        file.Write(middle);
    }

    internal static void Require(string program, string package)
    {
        if (ProcessRunner.Which(program) is null)
            throw new InvalidOperationException($"{program} is missing: these tests use a real one. apt-get install {package} (or run ./test.sh).");
    }
}

/// <summary>
/// The token service of the Distribution token spec for a <see cref="TestRegistry"/>: GET /token?service=&amp;scope= with
/// HTTP Basic answers a JWT (ES256) granting the scopes asked for, signed by a key whose self-signed certificate the
/// registry trusts (its x5c header names it). Wrong or missing credentials: 401.
/// </summary>
public sealed class TokenServer : IAsyncDisposable
{
    public const string Service = "kraud-test-registry", Issuer = "kraud-test-token-issuer";

    private readonly WebApplication _app;
    private readonly ECDsa _key;

    private TokenServer(WebApplication app, ECDsa key, string certificateFile, int port)
    {
        _app = app;
        _key = key;
        CertificateFile = certificateFile;
        HostPort = $"127.0.0.1:{port}";
    }

    public string CertificateFile { get; }
    public string HostPort { get; }
    public string Realm => $"http://{HostPort}/token";

    /// <summary>Tokens issued so far (tests check the registry really asked for them).</summary>
    public int Issued => _issued;

    private int _issued;

    public static async Task<TokenServer> StartAsync(RegistryAuth login, string directory)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kraud test token issuer", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign, true));
        var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var certificateFile = Path.Combine(directory, "token-issuer.pem");
        await File.WriteAllTextAsync(certificateFile, certificate.ExportCertificatePem());

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        TokenServer? server = null;
        app.MapGet("/token", (HttpContext http) =>
        {
            if (!Authenticated(http.Request.Headers.Authorization.ToString(), login)) return Results.Unauthorized();
            Interlocked.Increment(ref server!._issued);
            var scopes = http.Request.Query["scope"].SelectMany(s => (s ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries));
            var token = server!.Token(login.Username, scopes, certificate);
            return Results.Json(new { token, access_token = token, expires_in = 300, issued_at = DateTime.UtcNow.ToString("O") });
        });
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        server = new TokenServer(app, key, certificateFile, port);
        return server;
    }

    private static bool Authenticated(string authorization, RegistryAuth login)
    {
        if (!authorization.StartsWith("Basic ", StringComparison.Ordinal)) return false;
        var pair = Encoding.UTF8.GetString(Convert.FromBase64String(authorization["Basic ".Length..]));
        return pair == $"{login.Username}:{login.Password}";
    }

    private string Token(string subject, IEnumerable<string> scopes, X509Certificate2 certificate)
    {
        var access = scopes.Select(s => s.Split(':')).Where(p => p.Length == 3)
            .Select(p => new { type = p[0], name = p[1], actions = p[2].Split(',') }).ToArray();
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = new { typ = "JWT", alg = "ES256", x5c = new[] { Convert.ToBase64String(certificate.RawData) } };
        var claims = new { iss = Issuer, sub = subject, aud = Service, exp = now + 300, nbf = now - 10, iat = now, jti = Guid.NewGuid().ToString("N"), access };
        var signed = $"{Base64Url(JsonSerializer.SerializeToUtf8Bytes(header))}.{Base64Url(JsonSerializer.SerializeToUtf8Bytes(claims))}";
        // JWS ES256: r and s concatenated, which is .NET's default (IEEE P1363) signature format.
        return $"{signed}.{Base64Url(_key.SignData(Encoding.ASCII.GetBytes(signed), HashAlgorithmName.SHA256))}";
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _key.Dispose();
    }
}

/// <summary>
/// Images a test builds itself, the way people build images without a daemon: umoci makes the layers and the config in
/// an OCI layout (busybox-static as the base layer, then the test's files, whiteouts as their own layers), skopeo pushes
/// them to a registry.
/// </summary>
public sealed class TestImage : IDisposable
{
    private readonly string _directory;
    private readonly string _layout;
    private const string Tag = "built";

    private TestImage(string directory)
    {
        _directory = directory;
        _layout = Path.Combine(directory, "oci");
    }

    private string Ref => $"{_layout}:{Tag}";

    /// <summary>A new image whose first layer is busybox-static with a link per applet, /etc/passwd and /etc/group (root, app 1000, nobody).</summary>
    public static async Task<TestImage> BusyboxAsync()
    {
        TestRegistry.Require("umoci", "umoci");
        TestRegistry.Require("skopeo", "skopeo");
        var image = new TestImage(Directory.CreateTempSubdirectory("kraud-image-").FullName);
        await Run("umoci", "init", "--layout", image._layout);
        await Run("umoci", "new", "--image", image.Ref);
        var root = Path.Combine(image._directory, "base");
        Directory.CreateDirectory(Path.Combine(root, "bin"));
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        Directory.CreateDirectory(Path.Combine(root, "tmp"));
        Chmod(Path.Combine(root, "tmp"), (UnixFileMode)0b1_111_111_111);
        File.Copy("/bin/busybox", Path.Combine(root, "bin", "busybox"));
        // Links of our own: `busybox --install` would point them at the host's /usr/bin/busybox, which the image does not have.
        var applets = await ProcessRunner.RunAsync("/bin/busybox", ["--list"], TimeSpan.FromSeconds(10), CancellationToken.None);
        foreach (var applet in applets.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(a => a != "busybox"))
            File.CreateSymbolicLink(Path.Combine(root, "bin", applet), "busybox");
        await File.WriteAllTextAsync(Path.Combine(root, "etc", "passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
        await File.WriteAllTextAsync(Path.Combine(root, "etc", "group"), "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n");
        await image.AddAsync(root, "/");
        return image;
    }

    /// <summary>A layer that adds a file (or a directory's contents) at <paramref name="target"/>.</summary>
    public Task AddAsync(string source, string target) => Run("umoci", "insert", "--image", Ref, source, target);

    /// <summary>A layer with a file of this text (mode 0755 when executable).</summary>
    public async Task AddFileAsync(string target, string text, bool executable = false)
    {
        var file = Path.Combine(_directory, $"file-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(file, text);
        Chmod(file, executable ? (UnixFileMode)0b111_101_101 : (UnixFileMode)0b110_100_100);
        await AddAsync(file, target);
    }

    /// <summary>A layer of random (incompressible) bytes, to make an image of a given size.</summary>
    public async Task AddRandomAsync(string target, long bytes)
    {
        var file = Path.Combine(_directory, $"random-{Guid.NewGuid():N}");
        await using (var stream = File.Create(file))
        {
            var buffer = new byte[1 << 20];
            for (long written = 0; written < bytes; written += buffer.Length)
            {
                RandomNumberGenerator.Fill(buffer);
                await stream.WriteAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, bytes - written)));
            }
        }
        await AddAsync(file, target);
    }

    /// <summary>A layer that removes <paramref name="target"/> of the layers below (an OCI whiteout).</summary>
    public Task WhiteoutAsync(string target) => Run("umoci", "insert", "--image", Ref, "--whiteout", target);

    public async Task ConfigAsync(IReadOnlyList<string>? entrypoint = null, IReadOnlyList<string>? cmd = null, IReadOnlyDictionary<string, string>? env = null,
        string? workdir = null, string? user = null)
    {
        List<string> args = ["config", "--image", Ref, "--os", "linux", "--architecture", "amd64"];
        foreach (var e in entrypoint ?? []) args.AddRange(["--config.entrypoint", e]);
        foreach (var c in cmd ?? []) args.AddRange(["--config.cmd", c]);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) args.AddRange(["--config.env", $"{k}={v}"]);
        if (workdir is not null) args.AddRange(["--config.workingdir", workdir]);
        if (user is not null) args.AddRange(["--config.user", user]);
        await Run("umoci", [.. args]);
    }

    /// <summary>Pushes to registry/repository:tag with skopeo and answers the manifest digest the registry holds.</summary>
    public Task<string> PushAsync(TestRegistry registry, string repositoryAndTag) => PushAsync(registry.HostPort, registry.Login, repositoryAndTag);

    public async Task<string> PushAsync(string hostPort, RegistryAuth? login, string repositoryAndTag)
    {
        List<string> args = ["copy", "--quiet", "--dest-tls-verify=false"];
        if (login is not null) args.AddRange(["--dest-creds", $"{login.Username}:{login.Password}"]);
        args.AddRange([$"oci:{Ref}", $"docker://{hostPort}/{repositoryAndTag}"]);
        await Run("skopeo", [.. args]);
        using var client = new DistributionClient(new RegistryOptions { InsecureRegistries = ["127.0.0.0/8"] });
        var colon = repositoryAndTag.LastIndexOf(':');
        return (await client.GetManifestAsync(hostPort, repositoryAndTag[..colon], repositoryAndTag[(colon + 1)..], login, CancellationToken.None)).Digest;
    }

    private static void Chmod(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, mode);
    }

    private static async Task Run(string program, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(ProcessRunner.Which(program) ?? program, args, TimeSpan.FromMinutes(5), CancellationToken.None);
        if (result.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed: {result.Error}{result.Output}");
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
    }
}
