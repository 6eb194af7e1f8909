using ServerlessStorm.Engine.Expressions;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>The datastore keys a workflow's expressions name (<c>st2kv.system.x</c>, <c>st2kv('system.x')</c>), for its host to read before interpreting it.</summary>
public static class WorkflowDatastore
{
    /// <summary>Every key named anywhere in the workflow, as <c>scope.name</c>, in order and once each.</summary>
    public static IReadOnlyList<string> KeysOf(WorkflowDefinition workflow)
    {
        IEnumerable<Template> Of(TemplatedValue? value) => value?.Templates ?? [];
        IEnumerable<Template> One(Template? template) => template is null ? [] : [template];
        var templates = workflow.Vars.Concat(workflow.Output).SelectMany(e => Of(e.Value))
            .Concat(workflow.Tasks.Values.SelectMany(task => Of(task.Input)
                .Concat(Of(task.Delay))
                .Concat(task.Next.SelectMany(n => One(n.When).Concat(n.Publish.SelectMany(p => Of(p.Value)))))
                .Concat(task.With is { } with ? One(with.Items).Concat(Of(with.Concurrency)) : [])
                .Concat(task.Retry is { } retry ? One(retry.When).Concat(Of(retry.Count)).Concat(Of(retry.Delay)) : [])));
        return [.. templates.SelectMany(t => t.DatastoreKeys).Select(k => $"{k.Scope}.{k.Name}").Distinct(StringComparer.Ordinal)];
    }
}
