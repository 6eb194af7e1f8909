using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ServerlessStorm.Engine;

/// <summary>
/// Ids in the shape StackStorm users know (24 hex digits, the first 8 the creation time in Unix seconds).
/// An id derived from a trigger instance and a rule is deterministic, so a redelivered trigger instance finds the
/// execution it already caused instead of starting a second one.
/// </summary>
public static class StormIds
{
    public static string New(DateTimeOffset at) =>
        Prefix(at) + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    public static string ForRuleEnforcement(string triggerInstanceId, string ruleRef, DateTimeOffset occurredAt) =>
        Prefix(occurredAt) + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{triggerInstanceId}\n{ruleRef}")).AsSpan(0, 8));

    public static bool TryGetTimestamp(string id, out DateTimeOffset at)
    {
        at = default;
        if (id.Length != 24 || !uint.TryParse(id.AsSpan(0, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var seconds))
        {
            return false;
        }

        at = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return true;
    }

    private static string Prefix(DateTimeOffset at) => ((uint)at.ToUnixTimeSeconds()).ToString("x8", CultureInfo.InvariantCulture);
}
