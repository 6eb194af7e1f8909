using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Tests;

/// <summary>The expected values are StackStorm's (its test_jinja_render_*_filters.py) and CPython's.</summary>
public class StackStormFilterTests
{
    private static string Render(string template, JsonObject? vars = null, IKeyValueLookup? keyValues = null)
    {
        var scope = new TemplateScope { KeyValues = keyValues };
        foreach (var (name, value) in vars ?? [])
        {
            scope.Set(name, value?.DeepClone());
        }

        return Template.Parse(template).Render(scope);
    }

    [Theory]
    [InlineData("{{ '%s-%d' % ('a', 5) }}", "a-5")]
    [InlineData("{{ '%05.2f' % 3.14159 }}", "03.14")]
    [InlineData("{{ '%(name)s is %(age)d' % {'name': 'x', 'age': 3} }}", "x is 3")]
    [InlineData("{{ '%x %X %#x %#o %o' % (255, 255, 255, 8, 8) }}", "ff FF 0xff 0o10 10")]
    [InlineData("{{ '%e' % 12345.678 }}", "1.234568e+04")]
    [InlineData("{{ '%.3g|%g|%g|%g|%#g' % (0.0001234, 1e20, 123456789.0, 0.5, 1.0) }}", "0.000123|1e+20|1.23457e+08|0.5|1.00000")]
    [InlineData("{{ '%+d % d %-5d| %5s|%-5s|' % (3, 4, 5, 'ab', 'cd') }}", "+3  4 5    |    ab|cd   |")]
    [InlineData("{{ '%.2f %.2f %.0f %.0f %.1f' % (2.675, 0.125, 0.5, 1.5, 0.05) }}", "2.67 0.12 0 2 0.1")]
    [InlineData("{{ '%10.3e' % -0.000123 }}", "-1.230e-04")]
    [InlineData("{{ '%c%c' % (65, 'z') }}", "Az")]
    [InlineData("{{ '%r %s' % ('a', [1, 'b']) }}", "'a' [1, 'b']")]
    [InlineData("{{ '%5.1s|' % 'abc' }}", "    a|")]
    [InlineData("{{ '%%|%s' % none }}", "%|None")]
    [InlineData("{{ '%d|%.3d' % (3.99, 7) }}", "3|007")]
    [InlineData("{{ '%*d|%-*d|' % (5, 42, 4, 7) }}", "   42|7   |")]
    [InlineData("{{ '%g|%g|%s' % (100000.0, 1000000.0, true) }}", "100000|1e+06|True")]
    [InlineData("{{ '%05d|%#08x' % (-42, 255) }}", "-0042|0x0000ff")]
    [InlineData("{{ 'items: %s' % items }}", "items: [1, 2]")]
    [InlineData("{{ 7 % 3 }} {{ -7 % 3 }}", "1 2")]
    public void PercentFormatting_IsPythons(string template, string expected) =>
        Assert.Equal(expected, Render(template, new JsonObject { ["items"] = new JsonArray(1, 2) }));

    [Theory]
    [InlineData("{{ '%s %s' % ('a',) }}", "not enough arguments for format string")]
    [InlineData("{{ '%s' % ('a', 'b') }}", "not all arguments converted during string formatting")]
    [InlineData("{{ '%d' % 'x' }}", "%d format: a real number is required, not str")]
    [InlineData("{{ '%(missing)s' % {'a': 1} }}", "'missing'")]
    [InlineData("{{ '%z' % 1 }}", "unsupported format character 'z' (0x7a) at index 1")]
    [InlineData("{{ '%(a)s' % ('x',) }}", "format requires a mapping")]
    [InlineData("{{ '%*d' % (1000000000000, 1) }}", "width or precision too big")]
    public void PercentFormatting_BadInput_IsPythonsError(string template, string message)
    {
        var error = Assert.Throws<ExpressionEvaluationException>(() => Render(template));
        Assert.Contains(message, error.Message);
        Assert.Contains("at character", error.Message);
    }

    [Fact]
    public void PercentFormatting_IsBoundedByTheOutputLimit()
    {
        var scope = new TemplateScope { Limits = new ExpressionLimits(MaxOutputLength: 100) };
        Assert.Throws<ExpressionLimitException>(() => Template.Parse("{{ '%99999d' % 1 }}").Render(scope));
    }

    private static readonly JsonObject People = (JsonObject)JsonNode.Parse("""
        {"people": [{"first": "James", "last": "d"}, {"first": "Jacob", "last": "e"}, {"first": "Jayden", "last": "f"},
                    {"missing": "different"}],
         "foo": {"bar": "baz"}}
        """)!;

    [Theory]
    [InlineData("people[*].first", "['James', 'Jacob', 'Jayden']")]
    [InlineData("people[*].last", "['d', 'e', 'f']")]
    [InlineData("query_returns_no_results", "None")]
    [InlineData("$.foo.bar", "['baz']")]
    [InlineData("$..bar", "['baz']")]
    [InlineData("$..first", "['James', 'Jacob', 'Jayden']")]
    [InlineData("people[0].first", "['James']")]
    [InlineData("people[-1].missing", "['different']")]
    [InlineData("people[1:3].last", "['e', 'f']")]
    [InlineData("foo[*]", "[{'bar': 'baz'}]")]
    [InlineData("foo.*", "['baz']")]
    [InlineData("people[0].first,last", "['James', 'd']")]
    [InlineData("people[0]['first']", "['James']")]
    [InlineData("(foo.bar)|(people[2].first)", "['baz', 'Jayden']")]
    [InlineData("foo.bar|people[2].first", "None")] // "|" binds tighter than ".", as in jsonpath-rw
    [InlineData("foo.bar[0]", "['b']")]
    public void JsonPathQuery_MatchesAsJsonpathRw(string query, string expected) =>
        Assert.Equal(expected, Render("{{ obj | jsonpath_query(query) }}", new JsonObject { ["obj"] = People.DeepClone(), ["query"] = query }));

    [Fact]
    public void JsonPathQuery_KeepsTypes_AndReportsABadQuery()
    {
        var scope = new TemplateScope().Set("obj", People.DeepClone());
        var value = Template.Parse("{{ obj | jsonpath_query('people[*].first') }}").Evaluate(scope);
        Assert.Equal("""["James","Jacob","Jayden"]""", value!.ToJsonString());

        var error = Assert.Throws<ExpressionEvaluationException>(() => Template.Parse("{{ obj | jsonpath_query('people[') }}").Render(scope));
        Assert.Contains("JSONPath 'people['", error.Message);

        // A query from a payload cannot exhaust the stack.
        scope.Set("query", new string('(', 100_000) + "foo" + new string(')', 100_000));
        error = Assert.Throws<ExpressionEvaluationException>(() => Template.Parse("{{ obj | jsonpath_query(query) }}").Render(scope));
        Assert.Contains("nested deeper than 32", error.Message);

        scope.Set("query", "$" + string.Concat(Enumerable.Repeat(".a", 50_000)));
        error = Assert.Throws<ExpressionEvaluationException>(() => Template.Parse("{{ obj | jsonpath_query(query) }}").Render(scope));
        Assert.Contains("more than 256 steps", error.Message);
    }

    [Theory]
    [InlineData("12345", "3h25m45s")]
    [InlineData("0", "0s")]
    [InlineData("0.1", "0.1\u03bcs")]
    [InlineData("56", "56s")]
    [InlineData("56.2", "56s")]
    [InlineData("456", "7m36s")]
    [InlineData("4560", "1h16m0s")]
    [InlineData("45678997", "1y12d16h36m37s")]
    [InlineData("86400", "1d0h0m0s")]
    public void ToHumanTimeFromSeconds_IsStackStormsText(string seconds, string expected) =>
        Assert.Equal(expected, Render("{{ k1 | to_human_time_from_seconds }}", new JsonObject { ["k1"] = JsonNode.Parse(seconds) }));

    [Fact]
    public void ToHumanTimeFromSeconds_RefusesText() =>
        Assert.Contains("takes a number of seconds, got str", Assert.Throws<ExpressionEvaluationException>(() =>
            Render("{{ k1 | to_human_time_from_seconds }}", new JsonObject { ["k1"] = "stuff" })).Message);

    [Theory]
    [InlineData("{{ version | version_compare('0.10.0') }}", "0.9.0", "-1")]
    [InlineData("{{ version | version_compare('0.10.0') }}", "0.10.1", "1")]
    [InlineData("{{ version | version_compare('0.10.0') }}", "0.10.0", "0")]
    [InlineData("{{ version | version_more_than('0.10.0') }}", "0.9.0", "False")]
    [InlineData("{{ version | version_more_than('0.10.0') }}", "0.10.1", "True")]
    [InlineData("{{ version | version_more_than('0.10.0') }}", "0.10.0", "False")]
    [InlineData("{{ version | version_less_than('0.10.0') }}", "0.9.0", "True")]
    [InlineData("{{ version | version_less_than('0.10.0') }}", "0.10.1", "False")]
    [InlineData("{{ version | version_less_than('0.10.0') }}", "0.10.0", "False")]
    [InlineData("{{ version | version_equal('0.10.0') }}", "0.9.0", "False")]
    [InlineData("{{ version | version_equal('0.10.0') }}", "0.10.1", "False")]
    [InlineData("{{ version | version_equal('0.10.0') }}", "0.10.0", "True")]
    [InlineData("{{ version | version_match('>0.10.0') }}", "0.10.1", "True")]
    [InlineData("{{ version | version_match('>0.10.0') }}", "0.1.1", "False")]
    [InlineData("{{ version | version_match('<0.10.0') }}", "0.1.0", "True")]
    [InlineData("{{ version | version_match('<0.10.0') }}", "1.1.0", "False")]
    [InlineData("{{ version | version_match('==0.10.0') }}", "0.10.0", "True")]
    [InlineData("{{ version | version_match('==0.10.0') }}", "0.10.1", "False")]
    [InlineData("{{ version | version_match('>=1.0.0-rc.1') }}", "1.0.0-rc.2", "True")]
    [InlineData("{{ version | version_compare('1.0.0') }}", "1.0.0-alpha+build.5", "-1")]
    [InlineData("{{ version | version_compare('1.0.0-alpha.beta') }}", "1.0.0-alpha.1", "-1")]
    [InlineData("{{ version | version_bump_major }}", "0.10.1", "1.0.0")]
    [InlineData("{{ version | version_bump_minor }}", "0.10.1", "0.11.0")]
    [InlineData("{{ version | version_bump_patch }}", "0.10.1", "0.10.2")]
    [InlineData("{{ version | version_strip_patch }}", "0.10.1", "0.10")]
    public void VersionFilters_AreSemverAsStackStorm(string template, string version, string expected) =>
        Assert.Equal(expected, Render(template, new JsonObject { ["version"] = version }));

    [Theory]
    [InlineData("{{ '1.2' | version_bump_major }}", "1.2 is not valid SemVer string")]
    [InlineData("{{ '1.2.3' | version_match('~1.2.3') }}", "<op><version>")]
    public void VersionFilters_BadInput_SayWhy(string template, string message) =>
        Assert.Contains(message, Assert.Throws<ExpressionEvaluationException>(() => Render(template)).Message);

    private const string SealedReference = "\u27e6st2kv:0123456789abcdef0123456789abcdef:system:k8\u27e7";

    [Fact]
    public void DecryptKv_PassesASecretsSealedReferenceOn_SoThePlainValueIsNeverRendered()
    {
        var keyValues = new KeyValueSnapshot(new Dictionary<string, string> { ["system.k8"] = SealedReference, ["user.k8"] = SealedReference });

        Assert.Equal(SealedReference, Render("{{ st2kv.system.k8 | decrypt_kv }}", keyValues: keyValues));
        Assert.Equal("Bearer " + SealedReference, Render("Bearer {{ st2kv.user.k8 | decrypt_kv }}", keyValues: keyValues));
    }

    [Theory]
    [InlineData("{{ st2kv.system.doesnt_exist | decrypt_kv }}", "Referenced datastore item \"st2kv.system.doesnt_exist\" doesn't exist or it contains an empty string")]
    [InlineData("{{ st2kv.user.doesnt_exist | decrypt_kv }}", "Referenced datastore item \"st2kv.user.doesnt_exist\" doesn't exist or it contains an empty string")]
    [InlineData("{{ st2kv.system.plain | decrypt_kv }}", "st2kv.system.plain is not a secret")]
    [InlineData("{{ 'gAAAAABciphertext' | decrypt_kv }}", "decrypt_kv takes a secret from the datastore")]
    public void DecryptKv_OnAnythingButASecret_SaysWhat_AndNeverTheValue(string template, string message)
    {
        var keyValues = new KeyValueSnapshot(new Dictionary<string, string> { ["system.plain"] = "hunter2-plain" });
        var error = Assert.Throws<ExpressionEvaluationException>(() => Render(template, keyValues: keyValues));
        Assert.Contains(message, error.Message);
        Assert.DoesNotContain("hunter2-plain", error.Message);
        Assert.DoesNotContain("gAAAAAB", error.Message);
    }

    [Fact]
    public void St2kvFunction_ReadsSystemAndUserKeys_AndTheirKeysAreKnownBeforeRendering()
    {
        var template = Template.Parse("{{ st2kv('system.host') }}:{{ st2kv('port') | int + 1 }}", TemplateDialect.Orquesta);
        var scope = new TemplateScope { KeyValues = new KeyValueSnapshot(new Dictionary<string, string> { ["system.host"] = "api.local", ["user.port"] = "8080" }) };

        Assert.Equal([("system", "host"), ("user", "port")], template.DatastoreKeys);
        Assert.Equal("api.local:8081", template.Render(scope));
        Assert.Equal("api.local", Template.Parse("<% st2kv('system.host') %>", TemplateDialect.Orquesta).Render(scope));
        Assert.Contains("the datastore has no key system.nope", Assert.Throws<ExpressionEvaluationException>(() => Template.Parse("{{ st2kv('system.nope') }}").Render(scope)).Message);
        Assert.Equal("fallback|api.local|None", Template.Parse("{{ st2kv('system.nope', default='fallback') }}|{{ st2kv('system.host', decrypt=true) }}|{{ st2kv('nope', default=none) }}").Render(scope));
        Assert.Contains("decrypt must be true or false", Assert.Throws<ExpressionEvaluationException>(() => Template.Parse("{{ st2kv('system.host', decrypt='yes') }}").Render(scope)).Message);
        Assert.Contains("not dflt=", Assert.Throws<ExpressionEvaluationException>(() => Template.Parse("{{ st2kv('system.host', dflt=1) }}").Render(scope)).Message);
    }
}
