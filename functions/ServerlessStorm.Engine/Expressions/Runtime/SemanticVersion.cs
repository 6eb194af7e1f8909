using System.Globalization;
using System.Text.RegularExpressions;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>A semantic version (semver.org 2.0), parsed and ordered as Python's <c>semver</c> package does for StackStorm's version filters.</summary>
public sealed partial record SemanticVersion(long Major, long Minor, long Patch, string? Prerelease, string? Build) : IComparable<SemanticVersion>
{
    public static bool TryParse(string text, out SemanticVersion version)
    {
        var match = Pattern().Match(text);
        version = null!;
        if (!match.Success
            || !long.TryParse(match.Groups["major"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var major)
            || !long.TryParse(match.Groups["minor"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var minor)
            || !long.TryParse(match.Groups["patch"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var patch))
        {
            return false;
        }

        version = new SemanticVersion(major, minor, patch,
            match.Groups["pre"].Success ? match.Groups["pre"].Value : null,
            match.Groups["build"].Success ? match.Groups["build"].Value : null);
        return true;
    }

    /// <summary>Precedence: the numbers, then a prerelease before its release, identifiers compared one by one; build metadata is ignored.</summary>
    public int CompareTo(SemanticVersion? other)
    {
        if (other is null)
        {
            return 1;
        }

        var numbers = (Major, Minor, Patch).CompareTo((other.Major, other.Minor, other.Patch));
        if (numbers != 0)
        {
            return Math.Sign(numbers);
        }

        return (Prerelease, other.Prerelease) switch
        {
            (null, null) => 0,
            (null, _) => 1,
            (_, null) => -1,
            var (a, b) => ComparePrerelease(a, b),
        };
    }

    public override string ToString() =>
        $"{Major}.{Minor}.{Patch}{(Prerelease is null ? "" : "-" + Prerelease)}{(Build is null ? "" : "+" + Build)}";

    private static int ComparePrerelease(string a, string b)
    {
        var left = a.Split('.');
        var right = b.Split('.');
        for (var i = 0; i < Math.Min(left.Length, right.Length); i++)
        {
            var (x, y) = (left[i], right[i]);
            var xNumeric = x.All(char.IsAsciiDigit);
            var yNumeric = y.All(char.IsAsciiDigit);
            var order = (xNumeric, yNumeric) switch
            {
                (true, true) => System.Numerics.BigInteger.Parse(x, CultureInfo.InvariantCulture).CompareTo(System.Numerics.BigInteger.Parse(y, CultureInfo.InvariantCulture)),
                (true, false) => -1,
                (false, true) => 1,
                _ => string.CompareOrdinal(x, y),
            };
            if (order != 0)
            {
                return Math.Sign(order);
            }
        }

        return left.Length.CompareTo(right.Length);
    }

    [GeneratedRegex(@"^(?<major>0|[1-9][0-9]*)\.(?<minor>0|[1-9][0-9]*)\.(?<patch>0|[1-9][0-9]*)(?:-(?<pre>(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+(?<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Pattern();
}
