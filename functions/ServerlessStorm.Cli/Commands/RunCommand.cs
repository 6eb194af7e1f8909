using System.CommandLine;
using System.Text.Json.Nodes;
using ServerlessStorm.Cli.Client;
using ServerlessStorm.Engine.Executions;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

internal static class RunCommand
{
    public static Command Create()
    {
        var action = new Argument<string>("ACTION") { Description = "The action ref, e.g. core.local" };
        var parameters = new Argument<string[]>("PARAMETERS") { Description = "Parameters as key=value (values are cast to the parameter's type)", Arity = ArgumentArity.ZeroOrMore };
        var json = new Option<bool>("--json") { Description = "Print the whole execution as JSON" };
        var wait = new Option<int>("--timeout") { Description = "Seconds to wait for the execution to finish", DefaultValueFactory = _ => 600 };
        var api = CliOutput.ApiOption();
        var command = new Command("run", "Run an action through the local stack, wait for it, and print the result (st2 run)")
        {
            action, parameters, json, wait, api,
        };
        command.SetAction((result, cancellationToken) => CliOutput.WithClientAsync(result.GetValue(api), client =>
            RunAsync(client, result.GetValue(action)!, result.GetValue(parameters) ?? [], result.GetValue(json), TimeSpan.FromSeconds(result.GetValue(wait)), cancellationToken)));
        return command;
    }

    private static async Task<int> RunAsync(StormClient client, string action, string[] pairs, bool json, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (ParsePairs(pairs, out var error) is not { } parameters)
        {
            return CliOutput.Error(error!);
        }

        var body = new JsonObject { ["action"] = action, ["parameters"] = parameters };
        var created = await client.PostJsonAsync("api/v1/executions", body.ToJsonString(), null, cancellationToken);
        return await WaitAndPrintAsync(client, created, json, timeout, cancellationToken);
    }

    /// <summary>key=value pairs as parameters (values are text; the server casts them to each parameter's type).</summary>
    internal static JsonObject? ParsePairs(string[] pairs, out string? error)
    {
        error = null;
        var parameters = new JsonObject();
        foreach (var pair in pairs)
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                error = $"parameter '{pair}' is not key=value";
                return null;
            }

            parameters[pair[..equals]] = pair[(equals + 1)..];
        }

        return parameters;
    }

    /// <summary>Waits for a just-created execution and prints it; exit 0 only when it succeeded.</summary>
    internal static async Task<int> WaitAndPrintAsync(StormClient client, ApiReply created, bool json, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!created.IsSuccess)
        {
            Console.Error.WriteLine($"error: {created.Fault}");
            foreach (var problem in created.Body?["problems"]?.AsArray() ?? [])
            {
                Console.Error.WriteLine($"  - {problem}");
            }

            return created.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput;
        }

        var id = created.Body!["id"]!.GetValue<string>();
        var execution = await WaitAsync(client, id, timeout, cancellationToken);
        if (execution is null)
        {
            return CliOutput.Error($"execution {id} did not finish within {timeout.TotalSeconds} s; see 'storm execution get {id}'", CliOutput.Failed);
        }

        var status = execution["status"]?.GetValue<string>();
        var tasks = ExecutionCommands.IsWorkflow(execution) ? await TaskTree.LoadAsync(client, id, cancellationToken) : null;
        var waiting = tasks is null ? null : TaskTree.WaitingInquiry(tasks);
        Console.WriteLine(json ? CliOutput.Json(execution) : ExecutionCommands.Describe(execution));
        if (!json && tasks is not null)
        {
            Console.WriteLine(TaskTree.Describe(tasks));
        }

        if (status == ExecutionStatus.Pending && !json)
        {
            Console.WriteLine($"waiting for a response: {TaskTree.AnswerCommand(id)}");
        }
        else if (waiting is not null && status is not null && !ExecutionStatus.IsTerminal(status))
        {
            // Said on stderr too with --json, so a script sees why the run came back before the workflow ended.
            (json ? Console.Error : Console.Out).WriteLine(
                $"workflow {id} is waiting for an approval: task {waiting.Task} asks inquiry {waiting.Id}; answer it with: {TaskTree.AnswerCommand(waiting.Id)}");
        }

        // An inquiry waiting for its answer is where a run ends, as in StackStorm (a workflow's: paused on it there).
        return status is ExecutionStatus.Succeeded or ExecutionStatus.Pending || waiting is not null ? CliOutput.Ok : CliOutput.Failed;
    }

    /// <summary>Polls the execution until it finishes (or, an inquiry, waits for a person), with a spinner on an interactive terminal.</summary>
    internal static async Task<JsonNode?> WaitAsync(StormClient client, string id, TimeSpan timeout, CancellationToken cancellationToken)
    {
        async Task<JsonNode?> Poll(Action<string>? status)
        {
            var deadline = DateTime.UtcNow + timeout;
            var nextTaskCheck = DateTime.UtcNow;
            while (DateTime.UtcNow < deadline)
            {
                var reply = await client.GetAsync($"api/v1/executions/{id}", cancellationToken);
                var current = reply.Body?["status"]?.GetValue<string>();
                if (current is not null && (ExecutionStatus.IsTerminal(current) || current == ExecutionStatus.Pending))
                {
                    return reply.Body;
                }

                // A workflow waiting for an approval waits for a person: the run ends there and says so.
                if (reply.Body is { } body && ExecutionCommands.IsWorkflow(body) && DateTime.UtcNow >= nextTaskCheck)
                {
                    nextTaskCheck = DateTime.UtcNow + TimeSpan.FromSeconds(1);
                    if (await TaskTree.LoadAsync(client, id, cancellationToken) is { } tasks && TaskTree.WaitingInquiry(tasks) is not null)
                    {
                        return body;
                    }
                }

                status?.Invoke($"execution {id}: {current ?? "waiting"}");
                await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
            }

            return null;
        }

        if (Console.IsErrorRedirected || Console.IsOutputRedirected)
        {
            return await Poll(null);
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return await console.Status().StartAsync($"execution {id}: requested", ctx => Poll(text => ctx.Status(text)));
    }
}
