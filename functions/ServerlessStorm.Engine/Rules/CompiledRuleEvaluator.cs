using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Rules;

/// <summary>
/// Matches trigger instances against compiled rule indexes, so the cost of an event grows with the rules it could
/// match, not with all the rules there are (the idea of AWS event-ruler). Per trigger, criteria that can be compiled —
/// equals, iequals, startswith, istartswith, exists and inside on a payload field — become dictionary lookups and a
/// prefix-trie walk on the field's value, once per field; a rule becomes a candidate when all its compiled criteria
/// hit, and only then are its other criteria (regex, timediff, search, templated patterns, …) evaluated by
/// <see cref="RuleMatcher"/>. Rules with no compilable criterion are always candidates. Its answers are the
/// reference evaluator's (<see cref="NaiveRuleEvaluator"/>), which a property test checks.
/// </summary>
public sealed class CompiledRuleEvaluator : IRuleEvaluator
{
    private readonly PackCatalog _catalog;
    private readonly RuleMatcher _matcher;
    private readonly ConcurrentDictionary<string, RuleGroup> _groups = new(StringComparer.Ordinal);

    public CompiledRuleEvaluator(PackCatalog catalog, RuleMatcher matcher)
    {
        _catalog = catalog;
        _matcher = matcher;
        foreach (var triggerType in catalog.Rules.Select(r => r.TriggerType).Distinct(StringComparer.Ordinal))
        {
            foreach (var rules in catalog.RulesFor(triggerType, null).GroupBy(r => r.TriggerParameters.ToJsonString(), StringComparer.Ordinal))
            {
                _groups[GroupKey(triggerType, rules.First().TriggerParameters)] = new RuleGroup([.. rules]);
            }
        }
    }

    public IReadOnlyList<RuleDefinition> Evaluate(string triggerType, JsonObject? triggerParameters, JsonNode? payload)
    {
        if (triggerParameters is not null)
        {
            return _groups.TryGetValue(GroupKey(triggerType, triggerParameters), out var group) ? group.Evaluate(payload, _matcher) : [];
        }

        // A trigger instance without parameters reaches every rule on its type, whatever their parameters.
        var matched = new List<RuleDefinition>();
        var backstop = new List<RuleDefinition>();
        foreach (var rules in _catalog.RulesFor(triggerType, null).GroupBy(r => r.TriggerParameters.ToJsonString(), StringComparer.Ordinal))
        {
            var g = _groups[GroupKey(triggerType, rules.First().TriggerParameters)];
            matched.AddRange(g.EvaluateStandard(payload, _matcher));
            backstop.AddRange(g.Backstop);
        }

        if (matched.Count > 0)
        {
            return matched;
        }

        var value = Py.FromJson(payload);
        return [.. backstop.Where(r => _matcher.Match(r, value).IsMatch)];
    }

    private static string GroupKey(string triggerType, JsonObject parameters) =>
        triggerType + "\n" + JsonSerializer.Serialize(Canonical(parameters));

    // Trigger parameters compare as JSON values (JsonNode.DeepEquals), so their key order must not matter here.
    private static JsonNode? Canonical(JsonNode? node) => node switch
    {
        JsonObject obj => new JsonObject(obj.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Canonical(p.Value)))),
        JsonArray array => new JsonArray([.. array.Select(Canonical)]),
        _ => node?.DeepClone(),
    };

    /// <summary>
    /// The compiled index of the rules on one trigger (type and parameters). Each rule is filed under one anchor: the
    /// compilable criterion the fewest other rules share (an equality on a field with many values beats a shared
    /// prefix, which beats inside, which beats exists). An event collects the rules whose anchor it hits; for those,
    /// the other compilable criteria are checked on the JSON value directly and the rest by <see cref="RuleMatcher"/>.
    /// </summary>
    private sealed class RuleGroup
    {
        private readonly CompiledRule[] _rules;
        private readonly int[] _alwaysCandidates;
        private readonly FieldIndex[] _fields;

        public RuleGroup(IReadOnlyList<RuleDefinition> rules)
        {
            Backstop = [.. rules.Where(r => r.Enabled && r.IsBackstop)];
            var standard = rules.Where(r => r.Enabled && !r.IsBackstop).ToList();

            // First pass: how many rules share each compilable criterion's index entry.
            var load = new Dictionary<string, int>(StringComparer.Ordinal);
            var plans = standard.Select(rule => rule.Criteria.Select(c => (Criterion: c, Kind: Compile(c))).ToList()).ToList();
            foreach (var criterion in plans.SelectMany(p => p).Where(p => p.Kind == Compiled.Indexed).Select(p => p.Criterion))
            {
                foreach (var key in LoadKeys(criterion))
                {
                    load[key] = load.GetValueOrDefault(key) + 1;
                }
            }

            var fields = new Dictionary<string, FieldIndex>(StringComparer.Ordinal);
            var compiled = new List<CompiledRule>();
            var always = new List<int>();
            for (var id = 0; id < standard.Count; id++)
            {
                var plan = plans[id];
                var indexed = plan.Where(p => p.Kind == Compiled.Indexed).Select(p => p.Criterion).ToList();
                var anchor = indexed.MinBy(c => LoadKeys(c).Sum(k => load[k]) + Rank(c));
                if (anchor is not null)
                {
                    if (!fields.TryGetValue(anchor.Path.Source, out var field))
                    {
                        fields[anchor.Path.Source] = field = new FieldIndex(anchor.Path);
                    }

                    field.Add(anchor, id);
                }
                else if (plan.All(p => p.Kind != Compiled.Never))
                {
                    always.Add(id);
                }

                compiled.Add(new CompiledRule(
                    standard[id],
                    [.. indexed.Where(c => !ReferenceEquals(c, anchor)).Select(c => new IndexedCheck(c))],
                    [.. plan.Where(p => p.Kind == Compiled.Residual).Select(p => p.Criterion)],
                    plan.Any(p => p.Kind == Compiled.Never)));
            }

            _rules = [.. compiled];
            _alwaysCandidates = [.. always];
            _fields = [.. fields.Values];
        }

        public IReadOnlyList<RuleDefinition> Backstop { get; }

        public IReadOnlyList<RuleDefinition> Evaluate(JsonNode? payload, RuleMatcher matcher)
        {
            var matched = EvaluateStandard(payload, matcher);
            if (matched.Count > 0 || Backstop.Count == 0)
            {
                return matched;
            }

            var value = Py.FromJson(payload);
            return [.. Backstop.Where(r => matcher.Match(r, value).IsMatch)];
        }

        public List<RuleDefinition> EvaluateStandard(JsonNode? payload, RuleMatcher matcher)
        {
            var matched = new List<RuleDefinition>();
            var payloadIsEmpty = IsFalsy(payload);
            var candidates = new List<int>(_alwaysCandidates);
            if (!payloadIsEmpty)
            {
                foreach (var field in _fields)
                {
                    field.Collect(payload, candidates);
                }
            }

            candidates.Sort();
            LazyPayload? lazy = null;
            foreach (var id in candidates)
            {
                var rule = _rules[id];
                if (rule.Impossible || (payloadIsEmpty && rule.Definition.Criteria.Count > 0) || !PassesChecks(rule, payload))
                {
                    continue;
                }

                lazy ??= rule.Residual.Length > 0 ? new LazyPayload(payload) : null;
                if (PassesResidual(rule, payload, lazy, matcher))
                {
                    matched.Add(rule.Definition);
                }
            }

            return matched;
        }

        private static bool PassesChecks(CompiledRule rule, JsonNode? payload)
        {
            foreach (var check in rule.Checks)
            {
                if (!check.Matches(payload))
                {
                    return false;
                }
            }

            return true;
        }

        private static bool PassesResidual(CompiledRule rule, JsonNode? payload, LazyPayload? lazy, RuleMatcher matcher)
        {
            foreach (var criterion in rule.Residual)
            {
                if (!matcher.Check(criterion, RuleMatcher.TriggerRoot, lazy!.Get, ValueAt(criterion, payload), rule.Definition.Ref).Matched)
                {
                    return false;
                }
            }

            return true;
        }

        // Only the value under the criterion's key is converted, not the whole payload.
        private static object? ValueAt(Criterion criterion, JsonNode? payload) =>
            criterion.Path.Root == RuleMatcher.TriggerRoot && criterion.Path.Resolve(payload, out var found) is var node && found ? Py.FromJson(node) : null;

        // Index entries a criterion occupies; rules sharing them would be collected together.
        private static IEnumerable<string> LoadKeys(Criterion c) => c.Operator.Name switch
        {
            "inside" => ((List<object?>)c.Pattern!).Select(i => $"{c.Path.Source}\n=\n{Py.Repr(i)}"),
            "exists" => [$"{c.Path.Source}\nexists"],
            "iequals" => [$"{c.Path.Source}\ni=\n{((string)c.Pattern!).ToLowerInvariant()}"],
            "istartswith" => [$"{c.Path.Source}\ni^\n{((string)c.Pattern!).ToLowerInvariant()}"],
            "startswith" => [$"{c.Path.Source}\n^\n{c.Pattern}"],
            _ => [$"{c.Path.Source}\n=\n{Py.Repr(c.Pattern)}"],
        };

        // Ties go to the kinds that usually hit fewer events.
        private static double Rank(Criterion c) => c.Operator.Name switch
        {
            "equals" or "iequals" => 0,
            "startswith" or "istartswith" => 0.1 - Math.Min(0.09, ((string)c.Pattern!).Length / 1000.0),
            "inside" => 0.2,
            _ => 0.3,
        };

        private static bool IsFalsy(JsonNode? payload) => payload switch
        {
            null => true,
            JsonObject o => o.Count == 0,
            JsonArray a => a.Count == 0,
            JsonValue v => !Py.Truthy(Py.FromJson(v)),
            _ => false,
        };
    }

    private enum Compiled
    {
        Residual,
        Indexed,
        Never,
    }

    /// <summary>Whether a criterion can live in a field index, must be evaluated, or can never match.</summary>
    private static Compiled Compile(Criterion criterion)
    {
        if (criterion.PatternTemplate is not null || criterion.Path.Root != RuleMatcher.TriggerRoot)
        {
            return Compiled.Residual;
        }

        var pattern = criterion.Pattern;
        return criterion.Operator.Name switch
        {
            "exists" => Compiled.Indexed,
            // A null pattern never matches; so does a pattern str methods refuse (Python raises).
            "equals" when pattern is null => Compiled.Never,
            "equals" when ScalarKey.TryCreate(pattern, out _) => Compiled.Indexed,
            "iequals" or "startswith" or "istartswith" when pattern is string => Compiled.Indexed,
            "iequals" or "startswith" or "istartswith" => Compiled.Never,
            "inside" when pattern is null => Compiled.Never,
            "inside" when pattern is List<object?> list && list.All(item => item is null || ScalarKey.TryCreate(item, out _)) => Compiled.Indexed,
            _ => Compiled.Residual,
        };
    }

    private sealed record CompiledRule(RuleDefinition Definition, IndexedCheck[] Checks, Criterion[] Residual, bool Impossible);

    /// <summary>A compilable criterion checked straight on the payload's JSON, with the index's semantics.</summary>
    private sealed class IndexedCheck
    {
        private readonly Criterion _criterion;
        private readonly HashSet<ScalarKey> _keys = [];
        private readonly string? _text;

        public IndexedCheck(Criterion criterion)
        {
            _criterion = criterion;
            switch (criterion.Operator.Name)
            {
                case "equals":
                    _keys.Add(ScalarKey.From(criterion.Pattern!));
                    break;
                case "inside":
                    _keys.UnionWith(((List<object?>)criterion.Pattern!).Select(i => i is null ? ScalarKey.Null : ScalarKey.From(i)));
                    break;
                case "iequals" or "istartswith":
                    _text = ((string)criterion.Pattern!).ToLowerInvariant();
                    break;
                case "startswith":
                    _text = (string)criterion.Pattern!;
                    break;
            }
        }

        public bool Matches(JsonNode? payload)
        {
            var node = _criterion.Path.Resolve(payload, out var found);
            if (!found || node is null)
            {
                return _criterion.Operator.Name == "inside" && _keys.Contains(ScalarKey.Null);
            }

            if (_criterion.Operator.Name == "exists")
            {
                return true;
            }

            if (node is not JsonValue value)
            {
                return false;
            }

            var scalar = Py.FromJson(value);
            return _criterion.Operator.Name switch
            {
                "equals" or "inside" => _keys.Contains(ScalarKey.From(scalar!)),
                "iequals" => scalar is string s && s.ToLowerInvariant() == _text,
                "startswith" => scalar is string s && s.StartsWith(_text!, StringComparison.Ordinal),
                "istartswith" => scalar is string s && s.ToLowerInvariant().StartsWith(_text!, StringComparison.Ordinal),
                _ => false,
            };
        }
    }

    /// <summary>The anchors on one payload field: lookups by value, a prefix trie, and existence.</summary>
    private sealed class FieldIndex(PayloadPath path)
    {
        private readonly Dictionary<ScalarKey, List<int>> _equals = [];
        private readonly Dictionary<string, List<int>> _iequals = new(StringComparer.Ordinal);
        private readonly PrefixTrie _prefixes = new();
        private readonly PrefixTrie _iprefixes = new();
        private readonly List<int> _exists = [];

        public void Add(Criterion criterion, int rule)
        {
            switch (criterion.Operator.Name)
            {
                case "exists":
                    _exists.Add(rule);
                    break;
                case "equals":
                    AddTo(_equals, ScalarKey.From(criterion.Pattern!), rule);
                    break;
                case "inside":
                    foreach (var item in ((List<object?>)criterion.Pattern!).Select(i => i is null ? ScalarKey.Null : ScalarKey.From(i)).Distinct())
                    {
                        AddTo(_equals, item, rule);
                    }

                    break;
                case "iequals":
                    AddTo(_iequals, ((string)criterion.Pattern!).ToLowerInvariant(), rule);
                    break;
                case "startswith":
                    _prefixes.Add((string)criterion.Pattern!, rule);
                    break;
                case "istartswith":
                    _iprefixes.Add(((string)criterion.Pattern!).ToLowerInvariant(), rule);
                    break;
            }
        }

        /// <summary>Adds the rules whose anchor on this field the payload hits (each rule at most once).</summary>
        public void Collect(JsonNode? payload, List<int> candidates)
        {
            var node = path.Resolve(payload, out var found);
            if (!found || node is null)
            {
                // A missing key and a null are both None: only "inside" a list holding null can match.
                candidates.AddRange(_equals.GetValueOrDefault(ScalarKey.Null) ?? []);
                return;
            }

            candidates.AddRange(_exists);
            if (node is not JsonValue value)
            {
                return;
            }

            var scalar = Py.FromJson(value);
            candidates.AddRange(_equals.GetValueOrDefault(ScalarKey.From(scalar!)) ?? []);
            if (scalar is string text)
            {
                var lower = _iequals.Count > 0 || _iprefixes.Count > 0 ? text.ToLowerInvariant() : text;
                candidates.AddRange(_iequals.GetValueOrDefault(lower) ?? []);
                _prefixes.Walk(text, candidates);
                _iprefixes.Walk(lower, candidates);
            }
        }

        private static void AddTo<TKey>(Dictionary<TKey, List<int>> index, TKey key, int rule)
            where TKey : notnull
        {
            if (!index.TryGetValue(key, out var list))
            {
                index[key] = list = [];
            }

            list.Add(rule);
        }
    }

    /// <summary>Prefixes by character; walking a value visits every pattern that is a prefix of it.</summary>
    private sealed class PrefixTrie
    {
        private readonly Node _root = new();

        public int Count { get; private set; }

        public void Add(string prefix, int rule)
        {
            var node = _root;
            foreach (var c in prefix)
            {
                node.Children ??= [];
                if (!node.Children.TryGetValue(c, out var next))
                {
                    node.Children[c] = next = new Node();
                }

                node = next;
            }

            (node.Rules ??= []).Add(rule);
            Count++;
        }

        /// <summary>Adds the rules of every prefix of <paramref name="value"/> to <paramref name="found"/>.</summary>
        public void Walk(string value, List<int> found)
        {
            if (Count == 0)
            {
                return;
            }

            var node = _root;
            if (node.Rules is not null)
            {
                found.AddRange(node.Rules);
            }

            foreach (var c in value)
            {
                if (node.Children is null || !node.Children.TryGetValue(c, out node))
                {
                    return;
                }

                if (node.Rules is not null)
                {
                    found.AddRange(node.Rules);
                }
            }
        }

        private sealed class Node
        {
            public Dictionary<char, Node>? Children { get; set; }

            public List<int>? Rules { get; set; }
        }
    }

    /// <summary>
    /// A scalar as Python's <c>==</c> sees it: True, 1 and 1.0 are one key; "1" is another. Integral floats become
    /// their exact integer, so a float equals an int only when Python would say so.
    /// </summary>
    private readonly record struct ScalarKey(int Kind, long Integer, double Real, string? Text)
    {
        public static readonly ScalarKey Null = new(0, 0, 0, null);

        public static bool TryCreate(object? value, out ScalarKey key)
        {
            key = default;
            if (value is not (string or bool or long or double))
            {
                return false;
            }

            key = From(value);
            return true;
        }

        public static ScalarKey From(object value) => value switch
        {
            string s => new ScalarKey(1, 0, 0, s),
            bool b => new ScalarKey(2, b ? 1 : 0, 0, null),
            long l => new ScalarKey(2, l, 0, null),
            double d when d == Math.Floor(d) && d >= long.MinValue && d < long.MaxValue => new ScalarKey(2, (long)d, 0, null),
            double d => new ScalarKey(3, 0, d, null),
            _ => new ScalarKey(4, 0, 0, null),
        };
    }

    /// <summary>The payload converted to the expression model only when a templated pattern needs it.</summary>
    private sealed class LazyPayload
    {
        private readonly JsonNode? _payload;
        private object? _value;
        private bool _converted;

        public LazyPayload(JsonNode? payload)
        {
            _payload = payload;
            Get = Value;
        }

        /// <summary>One delegate per event, not one per criterion checked.</summary>
        public Func<object?> Get { get; }

        private object? Value()
        {
            if (!_converted)
            {
                _value = Py.FromJson(_payload);
                _converted = true;
            }

            return _value;
        }
    }
}
