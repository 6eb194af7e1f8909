using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace ServerlessStorm.Engine.Yaml;

/// <summary>Limits that keep a hostile YAML file from exhausting memory or the stack.</summary>
public sealed record YamlLimits(int MaxBytes = 1024 * 1024, int MaxDepth = 64, long MaxNodes = 100_000, int MaxAliases = 1_000)
{
    public static readonly YamlLimits Default = new();
}

/// <summary>A YAML problem with the position it was found at.</summary>
public sealed class YamlReadException(string message, SourcePosition position) : Exception(message)
{
    public SourcePosition Position { get; } = position;
}

/// <summary>
/// Reads one YAML document into <see cref="YamlNode"/>s, enforcing <see cref="YamlLimits"/>. Aliases are shared, not
/// copied, but they count at their expanded size, so a "billion laughs" document is refused before it is expanded.
/// </summary>
public static class BoundedYamlReader
{
    public static YamlNode? Read(string text, YamlLimits? limits = null)
    {
        limits ??= YamlLimits.Default;
        if (System.Text.Encoding.UTF8.GetByteCount(text) > limits.MaxBytes)
        {
            throw new YamlReadException($"the file is larger than the {limits.MaxBytes} byte limit", new SourcePosition(1, 1));
        }

        var state = new ReaderState(limits);
        var parser = new Parser(new StringReader(text));
        try
        {
            parser.Consume<StreamStart>();
            if (parser.Accept<StreamEnd>(out _))
            {
                return null;
            }

            parser.Consume<DocumentStart>();
            var root = parser.Accept<DocumentEnd>(out _) ? null : ReadNode(parser, state, 1);
            parser.Consume<DocumentEnd>();
            if (!parser.Accept<StreamEnd>(out _))
            {
                var position = parser.Current is { } current ? At(current.Start) : SourcePosition.Unknown;
                throw new YamlReadException("a pack file holds one YAML document; found a second one", position);
            }

            return root;
        }
        catch (YamlException ex)
        {
            throw new YamlReadException(CleanMessage(ex.Message), At(ex.Start));
        }
        catch (InvalidOperationException ex)
        {
            // YamlDotNet's scanner throws this on some malformed flow collections; point at the last good node.
            throw new YamlReadException($"malformed YAML after this point ({ex.Message})", state.LastPosition);
        }
    }

    private static YamlNode ReadNode(IParser parser, ReaderState state, int depth)
    {
        if (depth > state.Limits.MaxDepth)
        {
            throw new YamlReadException($"nesting deeper than {state.Limits.MaxDepth} levels", At(parser.Current!.Start));
        }

        state.LastPosition = At(parser.Current!.Start);
        YamlNode node;
        AnchorName anchor;
        if (parser.TryConsume<AnchorAlias>(out var alias))
        {
            if (++state.Aliases > state.Limits.MaxAliases)
            {
                throw new YamlReadException($"more than {state.Limits.MaxAliases} aliases", At(alias.Start));
            }

            if (!state.Anchors.TryGetValue(alias.Value.Value, out var target))
            {
                throw new YamlReadException($"alias '*{alias.Value.Value}' refers to no anchor", At(alias.Start));
            }

            state.Count(target.ExpandedSize, alias.Start);
            return target;
        }

        if (parser.TryConsume<Scalar>(out var scalar))
        {
            state.Count(1, scalar.Start);
            node = new YamlScalar(At(scalar.Start), scalar.Value, scalar.Style == ScalarStyle.Plain,
                scalar.Tag.IsEmpty ? null : scalar.Tag.Value);
            anchor = scalar.Anchor;
        }
        else if (parser.TryConsume<SequenceStart>(out var sequenceStart))
        {
            state.Count(1, sequenceStart.Start);
            var sequence = new YamlSequence(At(sequenceStart.Start));
            var before = state.Nodes;
            while (!parser.TryConsume<SequenceEnd>(out _))
            {
                sequence.Add(ReadNode(parser, state, depth + 1));
            }

            sequence.ExpandedSize = 1 + state.Nodes - before;
            node = sequence;
            anchor = sequenceStart.Anchor;
        }
        else if (parser.TryConsume<MappingStart>(out var mappingStart))
        {
            state.Count(1, mappingStart.Start);
            var mapping = new YamlMapping(At(mappingStart.Start));
            var before = state.Nodes;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                var keyStart = parser.Current!.Start;
                if (ReadNode(parser, state, depth + 1) is not YamlScalar key)
                {
                    throw new YamlReadException("a mapping key must be a plain value, not a list or mapping", At(keyStart));
                }

                if (!seen.Add(key.Value))
                {
                    throw new YamlReadException($"duplicate key '{key.Value}'", key.Position);
                }

                mapping.Add(key, ReadNode(parser, state, depth + 1));
            }

            mapping.ExpandedSize = 1 + state.Nodes - before;
            node = mapping;
            anchor = mappingStart.Anchor;
        }
        else
        {
            var current = parser.Current!;
            throw new YamlReadException($"unexpected {current.GetType().Name}", At(current.Start));
        }

        if (!anchor.IsEmpty)
        {
            state.Anchors[anchor.Value] = node;
        }

        return node;
    }

    private static SourcePosition At(Mark mark) => new((int)mark.Line, (int)mark.Column);

    // YamlDotNet prefixes its messages with the position, which we report separately.
    private static string CleanMessage(string message)
    {
        var close = message.IndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && close > 0 ? message[(close + 3)..] : message;
    }

    private sealed class ReaderState(YamlLimits limits)
    {
        public YamlLimits Limits { get; } = limits;

        public Dictionary<string, YamlNode> Anchors { get; } = new(StringComparer.Ordinal);

        public long Nodes { get; private set; }

        public int Aliases { get; set; }

        public SourcePosition LastPosition { get; set; } = new(1, 1);

        public void Count(long size, Mark at)
        {
            Nodes += size;
            if (Nodes > Limits.MaxNodes)
            {
                throw new YamlReadException($"more than {Limits.MaxNodes} values (counting aliases expanded)", At(at));
            }
        }
    }
}
