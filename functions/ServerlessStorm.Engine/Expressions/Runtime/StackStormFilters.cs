using System.Globalization;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Expressions.Syntax;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>StackStorm's own filters beyond Jinja's: the datastore, JSONPath, time and version filters.</summary>
internal sealed partial class Evaluator
{
    /// <summary>
    /// <c>st2kv.system.NAME | decrypt_kv</c>. A secret read from the datastore is already a sealed reference that
    /// only the runner opens, so it passes through as it is: the plain value never exists while rendering, and so
    /// never reaches a log, the audit or an error message. A missing or empty item is StackStorm's error.
    /// </summary>
    private object? DecryptKv(FilterExpr filter, object? value)
    {
        if (filter.Args.Count > 0 || filter.Kwargs.Count > 0)
        {
            throw Fail("decrypt_kv takes no arguments", filter.Offset);
        }

        if (DatastoreItem(filter.Target) is { } item)
        {
            if (value is not string text || text.Length == 0)
            {
                throw Fail($"Referenced datastore item \"st2kv.{item.Scope}.{item.Name}\" doesn't exist or it contains an empty string", filter.Offset);
            }

            return IsSealed(text)
                ? text
                : throw Fail($"decrypt_kv: datastore item st2kv.{item.Scope}.{item.Name} is not a secret (it is stored unencrypted; use it without decrypt_kv)", filter.Offset);
        }

        value = Defined(value, filter.Target.Offset);
        return value is string sealedText && IsSealed(sealedText)
            ? sealedText
            : throw Fail($"decrypt_kv takes a secret from the datastore (st2kv.system.NAME or st2kv.user.NAME), got {Py.TypeName(value)}: ciphertext copied out of the datastore is not decrypted in templates", filter.Offset);
    }

    private static bool IsSealed(string text) =>
        text.Contains(KeyValueService.ReferencePrefix, StringComparison.Ordinal) || text.Contains(KeyValueService.SealedValuePrefix, StringComparison.Ordinal);

    /// <summary>The datastore item an expression reads directly (<c>st2kv.system.x</c>, <c>st2kv['user']['x']</c>, <c>st2kv('system.x')</c>), or null.</summary>
    private (string Scope, string Name)? DatastoreItem(Expr expr)
    {
        switch (expr)
        {
            case AttributeExpr a when Evaluate(a.Target) is DatastoreNamespace { Scope: { } scope }:
                return (scope, a.Name);
            case IndexExpr i when Evaluate(i.Target) is DatastoreNamespace { Scope: { } scope } && Evaluate(i.Index) is string name:
                return (scope, name);
            case CallExpr { Target: null, Name: "st2kv", Args: [LiteralExpr { Value: string key }] }:
                return SplitKey(key);
            default:
                return null;
        }
    }

    // Orquesta's st2kv('system.x') is a system key; any other name is the user's own (st2kv('x') is st2kv.user.x).
    private static (string Scope, string Name) SplitKey(string key) =>
        key.StartsWith("system.", StringComparison.Ordinal) ? ("system", key["system.".Length..]) : ("user", key);

    /// <summary>
    /// Orquesta's <c>st2kv(key, decrypt=false, default=…)</c>: the value; <c>default</c> when the datastore has no
    /// such key, else an error. A secret is its sealed reference whether or not <c>decrypt</c> is true: the runner of
    /// the task that gets it opens it.
    /// </summary>
    private object? St2kvFunction(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, int offset)
    {
        if (args is not [string key])
        {
            throw Fail("st2kv() takes the key's name, a string (st2kv('system.name') or st2kv('name') for the user's own)", offset);
        }

        if (kwargs.Keys.FirstOrDefault(k => k is not ("decrypt" or "default")) is { } unknown)
        {
            throw Fail($"st2kv() takes decrypt= and default=, not {unknown}=", offset);
        }

        if (kwargs.TryGetValue("decrypt", out var decrypt) && decrypt is not bool)
        {
            throw Fail("st2kv(): decrypt must be true or false", offset);
        }

        var (scope, name) = SplitKey(key);
        var lookup = _scope.KeyValues ?? throw Fail($"st2kv('{key}'): no datastore is available here", offset);
        return lookup.Get(scope, name)
            ?? (kwargs.TryGetValue("default", out var fallback) ? fallback : throw Fail($"st2kv('{key}'): the datastore has no key {scope}.{name}", offset));
    }

    private object? JsonPathQuery(object? value, object? query, int offset)
    {
        if (query is not string text)
        {
            throw Fail($"jsonpath_query needs a query (a string), got {Py.TypeName(query)}", offset);
        }

        try
        {
            var matches = Runtime.JsonPathQuery.Find(value, text, _limits.MaxCollectionLength);
            return matches.Count == 0 ? null : matches;
        }
        catch (JsonPathSyntaxException ex)
        {
            throw Fail($"jsonpath_query: {ex.Message}", offset, ex);
        }
    }

    // StackStorm's exact text: "1y12d16h36m37s", leading zero units dropped. Its day is the day of the month of
    // 0001-01-01 plus the time (so the months are lost from 32 days on), and a value under a second is printed in μs.
    private string HumanTime(object? value, int offset)
    {
        if (value is not (long or double or bool))
        {
            throw Fail($"to_human_time_from_seconds takes a number of seconds, got {Py.TypeName(value)}", offset);
        }

        if (Py.Equal(value, 0L))
        {
            return "0s";
        }

        if (Py.Compare(value, 1L) < 0)
        {
            return Py.Str(value is bool b ? (b ? 1L : 0L) : value) + "\u03bcs";
        }

        var seconds = value is double d ? Math.Round(d, MidpointRounding.ToEven) : Py.ToDouble(value);
        DateTime at;
        try
        {
            at = DateTime.MinValue.AddSeconds(seconds);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw Fail($"to_human_time_from_seconds: {Py.Str(value)} seconds is past the year 9999", offset, ex);
        }

        long[] parts = [at.Year - 1, at.Day - 1, at.Hour, at.Minute, at.Second];
        var first = Array.FindIndex(parts, p => p != 0);
        if (first < 0)
        {
            return "0s";
        }

        string[] units = ["y", "d", "h", "m", "s"];
        return string.Concat(parts.Skip(first).Select((p, i) => p.ToString(CultureInfo.InvariantCulture) + units[first + i]));
    }

    private SemanticVersion SemVer(object? value, FilterExpr filter)
    {
        var text = value as string ?? throw Fail($"{filter.Name}: a version is a string, got {Py.TypeName(value)}", filter.Offset);
        return SemanticVersion.TryParse(text, out var version) ? version : throw Fail($"{filter.Name}: {text} is not valid SemVer string", filter.Offset);
    }

    // semver's match: "<op><version>" with op one of <, >, ==, <=, >=, != (a bare version means ==).
    private bool VersionMatch(SemanticVersion version, object? pattern, FilterExpr filter)
    {
        var text = pattern as string ?? throw Fail($"version_match needs a pattern (a string), got {Py.TypeName(pattern)}", filter.Offset);
        var op = text.Length >= 2 && text[..2] is ">=" or "<=" or "==" or "!=" ? text[..2]
            : text.Length >= 1 && text[0] is '<' or '>' ? text[..1]
            : text.Length >= 1 && char.IsAsciiDigit(text[0]) ? ""
            : throw Fail($"version_match: the pattern should be <op><version>, where <op> is one of '<', '>', '==', '<=', '>=', '!='; got '{text}'", filter.Offset);
        var order = version.CompareTo(SemVer(text[op.Length..], filter));
        return op switch
        {
            "<" => order < 0,
            ">" => order > 0,
            "<=" => order <= 0,
            ">=" => order >= 0,
            "!=" => order != 0,
            _ => order == 0,
        };
    }
}
