using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Engine.Security;

/// <summary>Who may ask for a token with a password (StackStorm's auth backends).</summary>
public interface IUserBackend
{
    /// <summary>True when <paramref name="password"/> is <paramref name="user"/>'s.</summary>
    Task<bool> AuthenticateAsync(string user, string password, CancellationToken cancellationToken);
}

/// <summary>
/// Users from an htpasswd file, as StackStorm's flat_file backend reads it: bcrypt (<c>htpasswd -B</c>, recommended),
/// Apache MD5 (<c>$apr1$</c>, htpasswd's default) and SHA-1 (<c>{SHA}</c>, <c>htpasswd -s</c>, as st2's docs use).
/// Plain-text and DES-crypt lines are refused and logged: they are readable or breakable by anyone who sees the file.
/// The file is read again when it changes, so users are added without a restart.
/// </summary>
public sealed class HtpasswdUserBackend(IOptions<AuthOptions> options, ILogger<HtpasswdUserBackend> logger) : IUserBackend
{
    private readonly object _gate = new();
    private (DateTime Written, long Length, Dictionary<string, string> Hashes)? _loaded;

    public Task<bool> AuthenticateAsync(string user, string password, CancellationToken cancellationToken)
    {
        if (options.Value.HtpasswdFile is not { Length: > 0 } path || !File.Exists(path))
        {
            return Task.FromResult(false);
        }

        var hashes = Load(path);
        if (!hashes.TryGetValue(user, out var hash))
        {
            // As long as for a known user, so the time taken does not tell which user names exist.
            Verify(password, UnknownUserHash);
            return Task.FromResult(false);
        }

        return Task.FromResult(Verify(password, hash));
    }

    /// <summary>True when <paramref name="password"/> matches an htpasswd <paramref name="hash"/> of a kind accepted here.</summary>
    public static bool Verify(string password, string hash)
    {
        if (hash.StartsWith("$2", StringComparison.Ordinal))
        {
            try
            {
                return BCrypt.Net.BCrypt.Verify(password, hash);
            }
            catch (Exception ex) when (ex is BCrypt.Net.SaltParseException or ArgumentException or IndexOutOfRangeException)
            {
                return false; // a malformed line lets nobody in
            }
        }

        if (hash.StartsWith(Apr1Magic, StringComparison.Ordinal))
        {
            var salt = hash[Apr1Magic.Length..].Split('$')[0];
            return FixedTimeEquals(Apr1(password, salt), hash);
        }

        if (hash.StartsWith("{SHA}", StringComparison.Ordinal))
        {
            return FixedTimeEquals("{SHA}" + Convert.ToBase64String(SHA1.HashData(Encoding.UTF8.GetBytes(password))), hash);
        }

        return false;
    }

    private const string Apr1Magic = "$apr1$";
    private static readonly string UnknownUserHash = BCrypt.Net.BCrypt.HashPassword("no such user", 10);
    private const string Itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>
    /// Apache's MD5-crypt (Poul-Henning Kamp's algorithm with the <c>$apr1$</c> magic). Written here because no
    /// maintained .NET package offers it; checked against hashes made by Apache's htpasswd and by openssl.
    /// </summary>
    internal static string Apr1(string password, string salt)
    {
        var pw = Encoding.UTF8.GetBytes(password);
        var s = Encoding.UTF8.GetBytes(salt.Length > 8 ? salt[..8] : salt);
        var alternate = MD5.HashData([.. pw, .. s, .. pw]);
        var context = new List<byte>([.. pw, .. Encoding.ASCII.GetBytes(Apr1Magic), .. s]);
        for (var left = pw.Length; left > 0; left -= 16)
        {
            context.AddRange(alternate.AsSpan(0, Math.Min(left, 16)));
        }

        for (var i = pw.Length; i != 0; i >>= 1)
        {
            context.Add((i & 1) != 0 ? (byte)0 : pw.Length > 0 ? pw[0] : (byte)0);
        }

        var digest = MD5.HashData([.. context]);
        for (var round = 0; round < 1000; round++)
        {
            var step = new List<byte>();
            step.AddRange((round & 1) != 0 ? pw : digest);
            if (round % 3 != 0)
            {
                step.AddRange(s);
            }

            if (round % 7 != 0)
            {
                step.AddRange(pw);
            }

            step.AddRange((round & 1) != 0 ? digest : pw);
            digest = MD5.HashData([.. step]);
        }

        var text = new StringBuilder(Apr1Magic).Append(Encoding.UTF8.GetString(s)).Append('$');
        void To64(int value, int count)
        {
            for (var i = 0; i < count; i++, value >>= 6)
            {
                text.Append(Itoa64[value & 0x3f]);
            }
        }

        To64((digest[0] << 16) | (digest[6] << 8) | digest[12], 4);
        To64((digest[1] << 16) | (digest[7] << 8) | digest[13], 4);
        To64((digest[2] << 16) | (digest[8] << 8) | digest[14], 4);
        To64((digest[3] << 16) | (digest[9] << 8) | digest[15], 4);
        To64((digest[4] << 16) | (digest[10] << 8) | digest[5], 4);
        To64(digest[11], 2);
        return text.ToString();
    }

    private static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    private Dictionary<string, string> Load(string path)
    {
        var info = new FileInfo(path);
        lock (_gate)
        {
            if (_loaded is { } loaded && loaded.Written == info.LastWriteTimeUtc && loaded.Length == info.Length)
            {
                return loaded.Hashes;
            }

            var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
            var number = 0;
            foreach (var line in File.ReadLines(path))
            {
                number++;
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                var hash = colon > 0 ? line[(colon + 1)..].Trim() : "";
                if (colon <= 0 || !(hash.StartsWith("$2", StringComparison.Ordinal) || hash.StartsWith(Apr1Magic, StringComparison.Ordinal) || hash.StartsWith("{SHA}", StringComparison.Ordinal)))
                {
                    logger.HtpasswdLineSkipped(path, number, colon > 0 ? line[..colon] : "(no user)");
                    continue;
                }

                hashes[line[..colon]] = hash;
            }

            _loaded = (info.LastWriteTimeUtc, info.Length, hashes);
            return hashes;
        }
    }
}
