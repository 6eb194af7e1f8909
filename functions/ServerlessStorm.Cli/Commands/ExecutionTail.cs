using ServerlessStorm.Cli.Client;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Cli.Commands;

/// <summary>
/// <c>storm execution tail</c>: follows an execution's output until it finishes. A workflow's tasks (and theirs) are
/// followed as they start, all at once, so the output of parallel branches shows as it comes, as StackStorm's tail
/// shows it; a marker on stderr names the task whenever the output switches from one task to another. A task that
/// had already finished when it was found is shown whole, in the order the tasks started.
/// </summary>
internal sealed class ExecutionTail(StormClient client, TextWriter stdout, TextWriter stderr)
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private sealed class Followed(string id, string? task, Followed? workflow)
    {
        public string Id { get; } = id;

        public string? Task { get; } = task;

        public Followed? Workflow { get; } = workflow;

        public long Offset { get; set; }

        public string? Status { get; set; }

        public bool Done { get; set; }

        public List<Followed> Tasks { get; } = [];
    }

    private Followed? _lastPrinted;

    /// <returns>The execution's final status, or the API's answer when it could not be followed.</returns>
    public Task<(string? Status, ApiReply? Failure)> FollowAsync(string executionId, CancellationToken cancellationToken) =>
        FollowAsync(new Followed(executionId, null, null), cancellationToken);

    private async Task<(string? Status, ApiReply? Failure)> FollowAsync(Followed root, CancellationToken cancellationToken)
    {
        var active = new List<Followed> { root };
        while (true)
        {
            // A workflow's tasks are taken before the workflow, so a task that ended is shown ending before the next
            // task its workflow started meanwhile is shown starting.
            active = [.. active.OrderByDescending(Depth)];
            var replies = await Task.WhenAll(active.Select(f =>
                client.GetAsync($"api/v1/executions/{Uri.EscapeDataString(f.Id)}/output?offset={f.Offset}", cancellationToken)));
            var started = new List<Followed>();
            for (var i = 0; i < active.Count; i++)
            {
                var (followed, reply) = (active[i], replies[i]);
                if (!reply.IsSuccess)
                {
                    return (null, reply);
                }

                var chunks = reply.Body!["chunks"]!.AsArray();
                if (chunks.Count > 0 && _lastPrinted != followed && followed.Task is not null && RunningTasks(active) > 1)
                {
                    stderr.WriteLine($"--- task {followed.Task} ({followed.Id})");
                }

                foreach (var chunk in chunks)
                {
                    (chunk!["stream"]!.GetValue<string>() == "stderr" ? stderr : stdout).Write(chunk["text"]!.GetValue<string>());
                    _lastPrinted = followed;
                }

                followed.Offset = reply.Body["next_offset"]!.GetValue<long>();
                followed.Status = reply.Body["status"]!.GetValue<string>();
                var children = reply.Body["children"]?.AsArray() ?? [];
                foreach (var child in children.Where(c => !followed.Tasks.Any(t => t.Id == c!["id"]!.GetValue<string>())).ToList())
                {
                    var task = new Followed(child!["id"]!.GetValue<string>(), child["task"]?.GetValue<string>() ?? "?", followed);
                    followed.Tasks.Add(task);
                    stderr.WriteLine($"task {task.Task} ({task.Id}) started");
                    if (child["status"]?.GetValue<string>() is { } childStatus && ExecutionStatus.IsTerminal(childStatus))
                    {
                        // Over already: nothing to interleave, so its output is shown whole, before the next task's.
                        if (await FollowAsync(task, cancellationToken) is { Failure: not null } failed)
                        {
                            return failed;
                        }
                    }
                    else
                    {
                        started.Add(task);
                    }
                }

                // Finished: its status is final, its output read to the end, and every task it started finished. A
                // task left pending or canceling by a workflow that has ended would never finish: it ends with it.
                var finished = ExecutionStatus.IsTerminal(followed.Status) && chunks.Count == 0 && followed.Tasks.All(t => t.Done);
                var orphaned = followed.Workflow is { } workflow && workflow.Status is { } workflowStatus && ExecutionStatus.IsTerminal(workflowStatus)
                    && followed.Status is ExecutionStatus.Pending or ExecutionStatus.Canceling;
                if (finished || orphaned)
                {
                    followed.Done = true;
                    if (followed.Task is not null)
                    {
                        stderr.WriteLine($"task {followed.Task} ({followed.Id}) {followed.Status}");
                    }
                }
            }

            if (root.Done)
            {
                return (root.Status, null);
            }

            active.RemoveAll(f => f.Done);
            active.AddRange(started);
            if (started.Count == 0)
            {
                await Task.Delay(PollInterval, cancellationToken);
            }
        }
    }

    private static int Depth(Followed followed) => followed.Workflow is { } workflow ? 1 + Depth(workflow) : 0;

    private static int RunningTasks(List<Followed> active) => active.Count(f => f.Task is not null && !f.Done);
}
