using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Executions;

/// <summary>
/// Counted slots shared by every host of a deployment, so a concurrency policy holds across processes. A slot is a
/// lease: one whose holder died frees itself when the lease runs out.
/// </summary>
public interface IConcurrencySlots
{
    /// <summary>
    /// Takes one of <paramref name="threshold"/> slots of <paramref name="scope"/> for <paramref name="holder"/> until
    /// <paramref name="leaseUntil"/>. True when the holder has a slot (also when it had one already).
    /// </summary>
    Task<bool> TryAcquireAsync(string scope, int threshold, string holder, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>Gives back the holder's slot; nothing happens when it holds none.</summary>
    Task ReleaseAsync(string scope, string holder, CancellationToken cancellationToken);
}

/// <summary>Slots in this process only: for tests and single-process hosts.</summary>
public sealed class InMemoryConcurrencySlots(TimeProvider time) : IConcurrencySlots
{
    private readonly Dictionary<string, Dictionary<string, DateTimeOffset>> _scopes = new(StringComparer.Ordinal);

    public Task<bool> TryAcquireAsync(string scope, int threshold, string holder, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        lock (_scopes)
        {
            if (!_scopes.TryGetValue(scope, out var holders))
            {
                _scopes[scope] = holders = new(StringComparer.Ordinal);
            }

            var now = time.GetUtcNow();
            foreach (var expired in holders.Where(h => h.Value <= now).Select(h => h.Key).ToList())
            {
                holders.Remove(expired);
            }

            if (!holders.ContainsKey(holder) && holders.Count >= threshold)
            {
                return Task.FromResult(false);
            }

            holders[holder] = leaseUntil;
            return Task.FromResult(true);
        }
    }

    public Task ReleaseAsync(string scope, string holder, CancellationToken cancellationToken)
    {
        lock (_scopes)
        {
            if (_scopes.TryGetValue(scope, out var holders))
            {
                holders.Remove(holder);
            }
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// Applies an action's concurrency policies to one execution: takes a slot under each, or names the policy that
/// is full (having given back the slots it took under the others).
/// </summary>
public sealed class ConcurrencyGate(PackCatalog catalog, IConcurrencySlots slots)
{
    /// <summary>
    /// How long a running workflow holds its slots past its start and each task's start. A workflow keeps them until
    /// its end is recorded (or it is canceled); the lease only frees them from one whose end never is, so it is long:
    /// a task or an inquiry may take hours.
    /// </summary>
    public static readonly TimeSpan WorkflowLease = TimeSpan.FromHours(24);

    /// <summary>True when some concurrency policy names the action.</summary>
    public bool Governs(string actionRef) => catalog.ConcurrencyPolicies.ContainsKey(actionRef);

    /// <summary>Null when the execution may run (it now holds a slot of every policy); else the policy that is full.</summary>
    public async Task<ConcurrencyPolicy?> TryEnterAsync(ExecutionRecord execution, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        var policies = catalog.ConcurrencyPolicies.GetValueOrDefault(execution.ActionRef) ?? [];
        var taken = new List<string>();
        foreach (var policy in policies)
        {
            var scope = Scope(policy, execution.Parameters);
            if (!await slots.TryAcquireAsync(scope, policy.Threshold, execution.Id, leaseUntil, cancellationToken))
            {
                foreach (var held in taken)
                {
                    await slots.ReleaseAsync(held, execution.Id, cancellationToken);
                }

                return policy;
            }

            taken.Add(scope);
        }

        return null;
    }

    /// <summary>
    /// Extends the leases of the slots a running workflow holds, then makes sure it is still running: when its end was
    /// recorded meanwhile (and its slots given back), the slots just renewed are given back again.
    /// </summary>
    public async Task HoldForWorkflowAsync(ExecutionRecord workflow, DateTimeOffset leaseUntil, Func<Task<ExecutionRecord?>> reread, CancellationToken cancellationToken)
    {
        var policies = catalog.ConcurrencyPolicies.GetValueOrDefault(workflow.ActionRef) ?? [];
        if (policies.Count == 0)
        {
            return;
        }

        foreach (var policy in policies)
        {
            // Each on its own: a slot that lapsed and was taken must not cost the workflow its other slots.
            await slots.TryAcquireAsync(Scope(policy, workflow.Parameters), policy.Threshold, workflow.Id, leaseUntil, cancellationToken);
        }

        if (await reread() is not { } now || ExecutionStatus.IsTerminal(now.Status))
        {
            await LeaveAsync(workflow, cancellationToken);
        }
    }

    /// <summary>Gives back the execution's slots (idempotent: a finished execution may be handled twice).</summary>
    public async Task LeaveAsync(ExecutionRecord execution, CancellationToken cancellationToken)
    {
        foreach (var policy in catalog.ConcurrencyPolicies.GetValueOrDefault(execution.ActionRef) ?? [])
        {
            await slots.ReleaseAsync(Scope(policy, execution.Parameters), execution.Id, cancellationToken);
        }
    }

    // One slot set per policy; an attribute policy has one per distinct combination of the named parameters'
    // values (as recorded: a secret parameter counts as its mask, so all its values share a slot set).
    private static string Scope(ConcurrencyPolicy policy, JsonObject parameters)
    {
        if (policy.Attributes.Count == 0)
        {
            return policy.Ref;
        }

        var values = string.Join("\n", policy.Attributes.Select(a => parameters[a]?.ToJsonString() ?? "null"));
        return $"{policy.Ref}|{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(values)).AsSpan(0, 8))}";
    }
}
