using System.Text.Json.Nodes;

namespace ServerlessStorm.ActionSdk;

/// <summary>
/// An action written in C#: a public class with a parameterless constructor in a pack's assembly, named by the
/// action's <c>entry_point</c> (<c>path/To.dll:Namespace.ClassName</c>) with <c>runner_type: dotnet</c>.
/// One instance runs one execution.
/// </summary>
public interface IStormAction
{
    /// <summary>
    /// Runs the action. Throwing fails the execution with the exception's message; honour
    /// <paramref name="cancellationToken"/>: it fires on the action's timeout and on a cancel request.
    /// </summary>
    Task<StormActionResult> RunAsync(StormActionContext context, CancellationToken cancellationToken);
}

/// <summary>What an execution of a C# action is given.</summary>
public sealed class StormActionContext
{
    public required string ExecutionId { get; init; }

    /// <summary>The action's parameters, resolved and checked against its metadata, secrets opened.</summary>
    public required JsonObject Parameters { get; init; }

    /// <summary>The pack's folder, for files the action ships.</summary>
    public required string PackDirectory { get; init; }

    /// <summary>The pack's config (configs/&lt;pack&gt;.yaml with its schema's defaults), rendered for this execution, secrets opened.</summary>
    public required JsonObject PackConfig { get; init; }

    /// <summary>Writes a line of live output (what <c>storm execution tail</c> shows; secrets masked).</summary>
    public required Action<string> Log { get; init; }
}

/// <summary>How a C# action ended: its result (any JSON, stored as <c>result.result</c>), and an error when it failed.</summary>
public sealed record StormActionResult(bool Succeeded, JsonNode? Result, string? Error = null)
{
    public static StormActionResult Success(JsonNode? result = null) => new(true, result);

    public static StormActionResult Failure(string error, JsonNode? result = null) => new(false, result, error);
}
