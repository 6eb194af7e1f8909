using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessStorm.Engine.Yaml;

/// <summary>A 1-based position in a source file.</summary>
public readonly record struct SourcePosition(int Line, int Column)
{
    public static readonly SourcePosition Unknown = new(0, 0);

    public override string ToString() => Line == 0 ? "?" : $"{Line}:{Column}";
}

/// <summary>A node of a YAML document that remembers where it was written.</summary>
public abstract class YamlNode(SourcePosition position)
{
    public SourcePosition Position { get; } = position;

    /// <summary>Number of nodes this one stands for once aliases are expanded (used to bound documents).</summary>
    internal long ExpandedSize { get; set; } = 1;

    public abstract JsonNode? ToJson();

    public abstract string KindName { get; }
}

public sealed class YamlMapping(SourcePosition position) : YamlNode(position)
{
    private readonly List<KeyValuePair<YamlScalar, YamlNode>> _entries = [];

    public IReadOnlyList<KeyValuePair<YamlScalar, YamlNode>> Entries => _entries;

    public override string KindName => "mapping";

    internal void Add(YamlScalar key, YamlNode value) => _entries.Add(new(key, value));

    public YamlNode? this[string key]
    {
        get
        {
            foreach (var entry in _entries)
            {
                if (entry.Key.Value == key)
                {
                    return entry.Value;
                }
            }

            return null;
        }
    }

    public YamlScalar? KeyNode(string key) => _entries.FirstOrDefault(e => e.Key.Value == key).Key;

    public override JsonNode ToJson()
    {
        var result = new JsonObject();
        foreach (var (key, value) in _entries)
        {
            result[key.Value] = value.ToJson();
        }

        return result;
    }
}

public sealed class YamlSequence(SourcePosition position) : YamlNode(position)
{
    private readonly List<YamlNode> _items = [];

    public IReadOnlyList<YamlNode> Items => _items;

    public override string KindName => "list";

    internal void Add(YamlNode item) => _items.Add(item);

    public override JsonNode ToJson() => new JsonArray([.. _items.Select(i => i.ToJson())]);
}

/// <summary>
/// A scalar. Plain scalars resolve to null, booleans and numbers with YAML 1.1 rules, the ones PyYAML (and so
/// StackStorm) applies: <c>yes</c>/<c>no</c>/<c>on</c>/<c>off</c> are booleans, <c>1e3</c> without a dot is a string.
/// </summary>
public sealed partial class YamlScalar(SourcePosition position, string value, bool isPlain, string? tag) : YamlNode(position)
{
    public string Value { get; } = value;

    public bool IsPlain { get; } = isPlain;

    public string? Tag { get; } = tag;

    public override string KindName => "scalar";

    public override JsonNode? ToJson()
    {
        if (Tag is "!!str" or "tag:yaml.org,2002:str" || !IsPlain)
        {
            return JsonValue.Create(Value);
        }

        var v = Value;
        if (v.Length == 0 || v is "~" or "null" or "Null" or "NULL")
        {
            return null;
        }

        switch (v)
        {
            case "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF":
                return JsonValue.Create(false);
        }

        if (DecimalInteger().IsMatch(v))
        {
            var digits = v.Replace("_", "", StringComparison.Ordinal);
            return long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)
                ? JsonValue.Create(l)
                : JsonValue.Create(double.Parse(digits, CultureInfo.InvariantCulture));
        }

        if (HexInteger().IsMatch(v))
        {
            var negative = v.StartsWith('-');
            var hex = v.TrimStart('+', '-')[2..].Replace("_", "", StringComparison.Ordinal);
            if (long.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var h))
            {
                return JsonValue.Create(negative ? -h : h);
            }
        }

        if (Float().IsMatch(v) && double.TryParse(v.Replace("_", "", StringComparison.Ordinal),
                NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
        {
            return JsonValue.Create(d);
        }

        return JsonValue.Create(v);
    }

    [GeneratedRegex(@"^[-+]?(0|[1-9][0-9_]*)$")]
    private static partial Regex DecimalInteger();

    [GeneratedRegex(@"^[-+]?0x[0-9a-fA-F_]+$")]
    private static partial Regex HexInteger();

    [GeneratedRegex(@"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$")]
    private static partial Regex Float();
}
