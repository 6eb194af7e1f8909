using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

internal static class ExecutionCommands
{
    public static Command Create()
    {
        var status = new Option<string?>("--status") { Description = "Only executions with this status (requested, scheduled, running, succeeded, failed, timeout)" };
        var limit = new Option<int>("--limit", "-n") { Description = "How many, newest first", DefaultValueFactory = _ => 50 };
        var since = new Option<string?>("--since") { Description = "Only executions started at or after this ISO 8601 time" };
        var json = new Option<bool>("--json") { Description = "Print JSON" };
        var api = CliOutput.ApiOption();
        var list = new Command("list", "List executions, newest first") { status, limit, since, json, api };
        list.SetAction((result, ct) => CliOutput.WithClientAsync(result.GetValue(api), async client =>
        {
            var query = new List<string> { $"limit={result.GetValue(limit)}" };
            if (result.GetValue(status) is { } s)
            {
                query.Add($"status={Uri.EscapeDataString(s)}");
            }

            if (result.GetValue(since) is { } from)
            {
                query.Add($"since={Uri.EscapeDataString(from)}");
            }

            var reply = await client.GetAsync($"api/v1/executions?{string.Join('&', query)}", ct);
            if (!reply.IsSuccess)
            {
                return CliOutput.Error(reply.Fault);
            }

            if (result.GetValue(json))
            {
                Console.WriteLine(CliOutput.Json(reply.Body));
            }
            else
            {
                PrintTable(reply.Body!.AsArray());
            }

            return CliOutput.Ok;
        }));

        var id = new Argument<string>("ID") { Description = "The execution id" };
        var getJson = new Option<bool>("--json") { Description = "Print JSON" };
        var getApi = CliOutput.ApiOption();
        var get = new Command("get", "Show one execution: status history, parameters and result") { id, getJson, getApi };
        get.SetAction((result, ct) => CliOutput.WithClientAsync(result.GetValue(getApi), async client =>
        {
            var reply = await client.GetAsync($"api/v1/executions/{Uri.EscapeDataString(result.GetValue(id)!)}", ct);
            if (!reply.IsSuccess)
            {
                return CliOutput.Error(reply.Fault, CliOutput.Failed);
            }

            if (result.GetValue(getJson))
            {
                Console.WriteLine(CliOutput.Json(reply.Body));
                return CliOutput.Ok;
            }

            Console.WriteLine(Describe(reply.Body!));
            if (IsWorkflow(reply.Body!) && await TaskTree.LoadAsync(client, reply.Body!["id"]!.GetValue<string>(), ct) is { } tasks)
            {
                Console.WriteLine(TaskTree.Describe(tasks));
            }

            return CliOutput.Ok;
        }));

        var reRunId = new Argument<string>("ID") { Description = "The execution to run again" };
        var overrides = new Argument<string[]>("PARAMETERS") { Description = "Parameters to change, as key=value", Arity = ArgumentArity.ZeroOrMore };
        var reRunJson = new Option<bool>("--json") { Description = "Print the whole execution as JSON" };
        var reRunTasks = new Option<string?>("--tasks") { Description = "A workflow: run it again from these tasks (comma-separated); every other task that succeeded keeps its result" };
        var reRunApi = CliOutput.ApiOption();
        var reRun = new Command("re-run", "Run an execution again with the same parameters (secrets included), optionally overridden; a workflow from its failed tasks; waits and prints it")
        {
            reRunId, overrides, reRunTasks, reRunJson, reRunApi,
        };
        reRun.SetAction((result, ct) => CliOutput.WithClientAsync(result.GetValue(reRunApi), async client =>
        {
            if (RunCommand.ParsePairs(result.GetValue(overrides) ?? [], out var error) is not { } parameters)
            {
                return CliOutput.Error(error!);
            }

            var created = await client.PostJsonAsync($"api/v1/executions/{Uri.EscapeDataString(result.GetValue(reRunId)!)}/re_run",
                new JsonObject
                {
                    ["parameters"] = parameters,
                    ["tasks"] = result.GetValue(reRunTasks) is { } names ? new JsonArray([.. names.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(n => (JsonNode)n)]) : null,
                }.ToJsonString(), null, ct);
            return await RunCommand.WaitAndPrintAsync(client, created, result.GetValue(reRunJson), TimeSpan.FromMinutes(10), ct);
        }));

        // cancel, pause and resume: one request each, then the execution's new status.
        Command StatusChange(string name, string description, HttpMethod method, string? body)
        {
            var id = new Argument<string>("ID") { Description = $"The execution to {name}" };
            var api = CliOutput.ApiOption();
            var command = new Command(name, description) { id, api };
            command.SetAction((result, ct) => CliOutput.WithClientAsync(result.GetValue(api), async client =>
            {
                var reply = await client.SendJsonAsync(method, $"api/v1/executions/{Uri.EscapeDataString(result.GetValue(id)!)}", body, ct);
                if (!reply.IsSuccess)
                {
                    return CliOutput.Error(reply.Fault, reply.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput);
                }

                Console.WriteLine($"execution {reply.Body!["id"]} is {reply.Body["status"]}");
                return CliOutput.Ok;
            }));
            return command;
        }

        var cancel = StatusChange("cancel", "Cancel an execution: at once if it has not started, else its processes are stopped (a workflow: and its tasks')", HttpMethod.Delete, null);
        var pause = StatusChange("pause", "Pause a workflow: its running tasks finish, no new one starts", HttpMethod.Put, """{"status": "pausing"}""");
        var resume = StatusChange("resume", "Resume a paused workflow", HttpMethod.Put, """{"status": "resuming"}""");

        var tailId = new Argument<string>("ID") { Description = "The execution to follow" };
        var tailApi = CliOutput.ApiOption();
        var tail = new Command("tail", "Follow an execution's output live until it finishes (a workflow's: its tasks', side by side as they run); exit 0 when it succeeded") { tailId, tailApi };
        tail.SetAction((result, ct) => CliOutput.WithClientAsync(result.GetValue(tailApi), async client =>
        {
            var (finalStatus, error) = await new ExecutionTail(client, Console.Out, Console.Error).FollowAsync(result.GetValue(tailId)!, ct);
            if (error is not null)
            {
                return CliOutput.Error(error.Fault, error.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput);
            }

            Console.Error.WriteLine($"execution {result.GetValue(tailId)} {finalStatus}");
            return finalStatus == Engine.Executions.ExecutionStatus.Succeeded ? CliOutput.Ok : CliOutput.Failed;
        }));

        return new Command("execution", "Inspect and manage executions") { list, get, reRun, cancel, pause, resume, tail };
    }

    /// <summary>An execution in st2's plain layout.</summary>
    internal static bool IsWorkflow(JsonNode execution) =>
        execution["action"]?["runner_type"]?.GetValue<string>() == Engine.Workflows.WorkflowDefinition.RunnerType;

    internal static string Describe(JsonNode execution)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"id: {execution["id"]}");
        text.AppendLine(CultureInfo.InvariantCulture, $"action.ref: {execution["action"]?["ref"]}");
        var elapsed = execution["elapsed_seconds"] is { } seconds ? $" ({seconds}s elapsed)" : "";
        text.AppendLine(CultureInfo.InvariantCulture, $"status: {execution["status"]}{elapsed}");
        if (execution["rule"]?["ref"] is { } rule)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"rule.ref: {rule}");
        }

        if (execution["re_run_of"] is { } original)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"re_run_of: {original}");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"trace_tag: {execution["trace_tag"]}");
        text.AppendLine(CultureInfo.InvariantCulture, $"start_timestamp: {execution["start_timestamp"]}");
        text.AppendLine(CultureInfo.InvariantCulture, $"end_timestamp: {execution["end_timestamp"]}");
        text.AppendLine("log:");
        foreach (var entry in execution["log"]?.AsArray() ?? [])
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  - {entry?["timestamp"]} {entry?["status"]}");
        }

        text.AppendLine("parameters: " + Indent(CliOutput.Json(execution["parameters"])));
        if (execution["error"] is { } error)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"error: {error}");
        }

        text.Append("result: " + Indent(CliOutput.Json(execution["result"])));
        return text.ToString();
    }

    private static string Indent(string json) => json.Replace("\n", "\n  ", StringComparison.Ordinal);

    private static void PrintTable(JsonArray executions)
    {
        var table = new Table().AddColumns("id", "action.ref", "status", "start_timestamp", "elapsed", "rule");
        foreach (var e in executions)
        {
            table.AddRow(
                Markup.Escape(e?["id"]?.ToString() ?? ""),
                Markup.Escape(e?["action"]?["ref"]?.ToString() ?? ""),
                Markup.Escape(e?["status"]?.ToString() ?? ""),
                Markup.Escape(e?["start_timestamp"]?.ToString() ?? ""),
                Markup.Escape(e?["elapsed_seconds"] is { } s ? $"{s}s" : ""),
                Markup.Escape(e?["rule"]?["ref"]?.ToString() ?? ""));
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected)
        {
            console.Profile.Width = 200;
        }

        console.Write(table);
    }
}
