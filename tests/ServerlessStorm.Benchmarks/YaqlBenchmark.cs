using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// The cost of a workflow's typical <c>when</c> and <c>publish</c> expressions: YAQL in <c>&lt;% %&gt;</c> beside the
/// Jinja that gives the same answer, parsed once and evaluated over and over on one thread (as the interpreter does,
/// the parse being cached).
/// </summary>
internal static class YaqlBenchmark
{
    public static int Run(string[] args)
    {
        var seconds = Args.Int(args, "--seconds", 1);
        var budget = TimeSpan.FromSeconds(seconds);
        var expressions = new (string Name, string Yaql, string Jinja)[]
        {
            ("ctx value", "<% ctx(name) %>", "{{ ctx(name) }}"),
            ("when: succeeded and a count", "<% succeeded() and ctx().count > 3 %>", "{{ succeeded() and ctx().count > 3 }}"),
            ("publish: non-empty stdout lines", "<% result().stdout.split('\\n').where($ != '').len() %>",
                "{% for l in result().stdout.split('\\n') if l != '' %}{% if loop.last %}{{ loop.length }}{% endif %}{% endfor %}"),
            ("publish: server names joined", "<% ctx().servers.select($.name).join(',') %>",
                "{% for s in ctx().servers %}{{ s.name }}{% if not loop.last %},{% endif %}{% endfor %}"),
            ("when: any server on a port", "<% ctx().servers.any($.port = 5432) %>",
                "{% for s in ctx().servers if s.port == 5432 %}{% if loop.first %}True{% endif %}{% endfor %}"),
        };

        Console.WriteLine($"one thread; {Environment.ProcessorCount} cores on the machine; parsed once, 10,000 warm-up evaluations, then ~{seconds} s each");
        Console.WriteLine();
        Console.WriteLine("| expression | YAQL µs | Jinja µs | YAQL bytes | Jinja bytes | same answer |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (name, yaql, jinja) in expressions)
        {
            var (yaqlMicros, yaqlBytes, yaqlValue) = Measure(yaql, budget);
            var (jinjaMicros, jinjaBytes, jinjaValue) = Measure(jinja, budget);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {yaqlMicros:0.00} | {jinjaMicros:0.00} | {yaqlBytes:N0} | {jinjaBytes:N0} | {(Py.Str(yaqlValue) == Py.Str(jinjaValue) ? "yes" : $"no: {Py.Str(yaqlValue)} / {Py.Str(jinjaValue)}")} |"));
        }

        return 0;
    }

    private static (double Micros, long Bytes, object? Value) Measure(string source, TimeSpan budget)
    {
        var template = Template.Parse(source, TemplateDialect.Orquesta);
        var scope = new TemplateScope { Workflow = new Functions() };
        object? value = null;
        for (var i = 0; i < 10_000; i++)
        {
            value = template.EvaluateValue(scope);
        }

        var runs = 0L;
        var before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < budget)
        {
            template.EvaluateValue(scope);
            runs++;
        }

        return (clock.Elapsed.TotalMilliseconds * 1000 / runs, (GC.GetAllocatedBytesForCurrentThread() - before) / runs, value);
    }

    // A workflow part-way through: the context and the finished task's result, as the interpreter hands them over.
    private sealed class Functions : IWorkflowFunctions
    {
        private static readonly OrderedDictionary<string, object?> Context = (OrderedDictionary<string, object?>)Py.FromJson(JsonNode.Parse("""
            {"name": "storm", "count": 5,
             "servers": [{"name": "web1", "port": 80}, {"name": "web2", "port": 8080}, {"name": "db1", "port": 5432}, {"name": "cache1", "port": 6379}]}
            """))!;

        private static readonly object? TaskResult = Py.FromJson(JsonNode.Parse("""{"stdout": "web1 ok\nweb2 ok\n\ndb1 ok\ncache1 ok\n", "return_code": 0}"""));

        object? IWorkflowFunctions.Context(string? name) => name is null ? Context : Context[name];

        public object? Result() => TaskResult;

        public object? Item(string? name) => null;

        public bool Succeeded() => true;

        public bool Failed() => false;

        public bool Completed() => true;

        public string? TaskStatus(string taskName) => "succeeded";
    }
}
