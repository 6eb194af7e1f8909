using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type inquirer (core.ask): asks a person. The execution stays <c>pending</c> with the question in its result
/// until someone allowed answers it through the API or <c>storm inquiry respond</c> (see <see cref="InquiryService"/>),
/// or its time to live runs out.
/// </summary>
public sealed class InquirerRunner : IActionRunner
{
    public const string Type = "inquirer";

    /// <summary>StackStorm's default question: a yes/no "continue".</summary>
    public static JsonObject DefaultSchema => new()
    {
        ["type"] = "object",
        ["properties"] = new JsonObject
        {
            ["continue"] = new JsonObject { ["type"] = "boolean", ["description"] = "Would you like to continue the workflow?", ["required"] = true },
        },
        ["required"] = new JsonArray("continue"),
    };

    public string RunnerType => Type;

    public string? OutputKey => "response";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
    [
        ParameterReader.Define("schema", "object", defaultValue: DefaultSchema, description: "JSON schema the response must match."),
        ParameterReader.Define("users", "array", defaultValue: new JsonArray(), description: "Users who may respond; anyone when empty."),
        ParameterReader.Define("roles", "array", defaultValue: new JsonArray(), description: "Roles that may respond (needs RBAC, which this platform does not have: use users)."),
        ParameterReader.Define("route", "string", defaultValue: "", description: "A route to tell people about the inquiry (through rules on core.st2.generic.inquiry)."),
        ParameterReader.Define("ttl", "integer", defaultValue: 1440, description: "Minutes to wait for a response before the inquiry times out."),
    ];

    public Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        var p = context.Parameters;
        if (p["schema"] is JsonObject schema && Json.JsonSchema.CheckSchema(schema) is { Count: > 0 } problems)
        {
            return Task.FromResult(RunnerResult.Failed([], "the inquiry's schema is not valid: " + string.Join("; ", problems)));
        }

        return Task.FromResult(new RunnerResult(ExecutionStatus.Pending, new JsonObject
        {
            ["schema"] = p["schema"]?.DeepClone() ?? DefaultSchema,
            ["users"] = p["users"]?.DeepClone() ?? new JsonArray(),
            ["roles"] = p["roles"]?.DeepClone() ?? new JsonArray(),
            ["route"] = p["route"]?.DeepClone() ?? "",
            ["ttl"] = p["ttl"]?.DeepClone() ?? 1440,
            ["response"] = new JsonObject(),
        }));
    }
}
