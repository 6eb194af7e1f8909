using System.Globalization;
using System.Text;
using ServerlessStorm.Cli.Client;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Cli.Commands;

/// <summary>A workflow's task executions, sub-workflows' tasks nested under theirs, as <c>storm execution get</c> and <c>storm run</c> show them.</summary>
internal sealed record TaskTree(string Id, string Task, string Action, string RunnerType, string Status, IReadOnlyList<TaskTree> Tasks)
{
    private const int MaxDepth = 10;

    /// <summary>The tasks of workflow execution <paramref name="id"/> so far, in the order they started; null when they could not be read.</summary>
    public static async Task<IReadOnlyList<TaskTree>?> LoadAsync(StormClient client, string id, CancellationToken cancellationToken, int depth = 0)
    {
        // The output route lists a workflow's task executions; an offset past any output reads none of it.
        var reply = await client.GetAsync($"api/v1/executions/{Uri.EscapeDataString(id)}/output?offset={long.MaxValue.ToString(CultureInfo.InvariantCulture)}", cancellationToken);
        if (!reply.IsSuccess)
        {
            return null;
        }

        var tasks = new List<TaskTree>();
        foreach (var child in reply.Body?["children"]?.AsArray() ?? [])
        {
            var childId = child?["id"]?.GetValue<string>() ?? "?";
            var runner = child?["runner_type"]?.GetValue<string>() ?? "";
            var nested = runner == WorkflowDefinition.RunnerType && depth < MaxDepth ? await LoadAsync(client, childId, cancellationToken, depth + 1) ?? [] : [];
            tasks.Add(new TaskTree(childId, child?["task"]?.GetValue<string>() ?? "?", child?["action"]?.GetValue<string>() ?? "", runner,
                child?["status"]?.GetValue<string>() ?? "", nested));
        }

        return tasks;
    }

    /// <summary>The first task, at any depth, that is an inquiry waiting for a response.</summary>
    public static TaskTree? WaitingInquiry(IEnumerable<TaskTree> tasks) =>
        tasks.Select(t => t.IsWaitingInquiry ? t : WaitingInquiry(t.Tasks)).FirstOrDefault(t => t is not null);

    public bool IsWaitingInquiry => RunnerType == InquirerRunner.Type && Status == ExecutionStatus.Pending;

    public static string AnswerCommand(string inquiryId) => $"storm inquiry respond {inquiryId} --data '{{...}}'";

    public static string Describe(IReadOnlyList<TaskTree> tasks)
    {
        var text = new StringBuilder("tasks:");
        if (tasks.Count == 0)
        {
            text.Append(" (none started yet)");
        }

        Write(tasks, 1);
        return text.ToString();

        void Write(IReadOnlyList<TaskTree> level, int indent)
        {
            foreach (var task in level)
            {
                text.AppendLine().Append(' ', indent * 2).Append(CultureInfo.InvariantCulture, $"- {task.Task} ({task.Action}): {task.Status}  {task.Id}");
                if (task.IsWaitingInquiry)
                {
                    text.Append(CultureInfo.InvariantCulture, $"  <- waiting for a response: {AnswerCommand(task.Id)}");
                }

                Write(task.Tasks, indent + 1);
            }
        }
    }
}
