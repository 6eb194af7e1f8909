using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Engine.Security.Rbac;

/// <summary>
/// The resource a permission is asked on: its StackStorm uid (<c>action:examples:deploy</c>, <c>webhook:hello</c>,
/// <c>key_value_pair:st2kv.system:name</c>, …), the pack it lives in, and for an execution (or an inquiry) the uid of
/// its action, whose grants cover it.
/// </summary>
public sealed record ResourceRef(string Uid, string? Pack = null, string? ActionUid = null)
{
    public static ResourceRef Action(string actionRef) =>
        new($"action:{actionRef.Replace('.', ':')}", actionRef.Split('.')[0]);

    public static ResourceRef Execution(string id, string actionRef) =>
        new($"execution:{id}", actionRef.Split('.')[0], Action(actionRef).Uid);
}

/// <summary>
/// StackStorm's RBAC decisions: system roles (system_admin and admin may do everything, observer may view and list),
/// then the grants of the user's roles, a grant on a pack covering its actions and rules, and grants on an action
/// covering its executions. The administrator (<see cref="AuthOptions.AdminUser"/>) always holds system_admin.
/// </summary>
public sealed class AccessPolicy(RbacDefinitions definitions, IOptions<RbacOptions> options, IOptions<AuthOptions> auth, ILogger<AccessPolicy> logger)
{
    public bool Enabled => options.Value.Enabled;

    /// <summary>The roles <paramref name="user"/> holds.</summary>
    public IReadOnlyList<string> RolesOf(string user)
    {
        var assigned = definitions.Assignments.GetValueOrDefault(user)?.Roles ?? [];
        return user == auth.Value.AdminUser && !assigned.Contains(RbacDefinitions.SystemAdmin) ? [RbacDefinitions.SystemAdmin, .. assigned] : assigned;
    }

    public bool HasRole(string user, string role) => RolesOf(user).Contains(role, StringComparer.Ordinal);

    /// <summary>Whether the user may do what only administrators may (see secrets, act for other users).</summary>
    public bool IsAdmin(string user) => !Enabled || RolesOf(user).Any(r => r is RbacDefinitions.SystemAdmin or RbacDefinitions.Admin);

    /// <summary>Why <paramref name="user"/> may not use <paramref name="permission"/> on <paramref name="resource"/>, or null when they may.</summary>
    public string? Denial(string user, string permission, ResourceRef? resource)
    {
        if (!Enabled || permission.Length == 0 || Allows(user, permission, resource))
        {
            return null;
        }

        var message = resource is null || Permissions.Global.Contains(permission)
            ? $"User \"{user}\" doesn't have required permission \"{permission}\""
            : $"User \"{user}\" doesn't have required permission \"{permission}\" on resource \"{resource.Uid}\"";
        logger.PermissionDenied(user, permission, resource?.Uid ?? "(global)");
        return message;
    }

    private bool Allows(string user, string permission, ResourceRef? resource)
    {
        var roles = RolesOf(user);
        if (roles.Any(r => r is RbacDefinitions.SystemAdmin or RbacDefinitions.Admin))
        {
            return true;
        }

        if (roles.Contains(RbacDefinitions.Observer) && (permission.EndsWith("_view", StringComparison.Ordinal)
            || permission.EndsWith("_list", StringComparison.Ordinal) || permission.EndsWith("_search", StringComparison.Ordinal)))
        {
            return true;
        }

        var grants = roles.Select(definitions.Roles.GetValueOrDefault).OfType<Role>().SelectMany(r => r.Grants).ToList();
        if (Permissions.Global.Contains(permission))
        {
            // A global type is held by any grant that names it; for an inquiry, also by running its workflow.
            return grants.Any(g => g.PermissionTypes.Contains(permission))
                || (permission == Permissions.InquiryRespond && resource?.ActionUid is { } workflow && Matches(grants, Permissions.ActionExecute, workflow, resource.Pack));
        }

        if (resource is null)
        {
            return false;
        }

        if (Matches(grants, permission, resource.Uid, resource.Pack))
        {
            return true;
        }

        // An execution is covered by its action's grants: viewing by action_view, stopping and re-running by action_execute.
        return Permissions.ResourceTypes[permission] == "execution" && resource.ActionUid is { } action
            && Matches(grants, permission switch
            {
                Permissions.ExecutionView => Permissions.ActionView,
                Permissions.ExecutionAll => Permissions.ActionAll,
                _ => Permissions.ActionExecute,
            }, action, resource.Pack);
    }

    private static bool Matches(List<PermissionGrant> grants, string permission, string uid, string? pack)
    {
        var type = Permissions.ResourceTypes[permission];
        var accepted = new HashSet<string>(StringComparer.Ordinal) { permission, $"{type}_all" };
        if (permission.EndsWith("_view", StringComparison.Ordinal))
        {
            // Whoever may change or run a resource may see it.
            foreach (var verb in new[] { "create", "modify", "delete", "execute" })
            {
                accepted.Add($"{type}_{verb}");
            }
        }

        var packUid = pack is not null && Permissions.PackContent.Contains(type) ? $"pack:{pack}" : null;
        return grants.Any(g => (g.ResourceUid == uid || (packUid is not null && g.ResourceUid == packUid)) && g.PermissionTypes.Any(accepted.Contains));
    }
}
