using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Security.Rbac;

/// <summary>RBAC settings (configuration section <c>Storm:Rbac</c>).</summary>
public sealed class RbacOptions
{
    public const string Section = "Storm:Rbac";

    /// <summary>
    /// Off, every authenticated user may do everything (StackStorm's behaviour without RBAC); on (the default), users
    /// may do what their roles grant, and the administrator (<see cref="AuthOptions.AdminUser"/>) holds system_admin.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// The folder with StackStorm's <c>roles/*.yaml</c> and <c>assignments/*.yaml</c>; by default <c>rbac</c> beside
    /// the packs folder, as <c>/opt/stackstorm/rbac</c> sits beside <c>/opt/stackstorm/packs</c>. A missing folder
    /// means no roles beyond the system ones.
    /// </summary>
    public string? Path { get; set; }
}

/// <summary>One grant of a role: permission types on a resource (none: global types only).</summary>
public sealed record PermissionGrant(string? ResourceUid, IReadOnlyList<string> PermissionTypes);

/// <summary>A role as StackStorm's <c>rbac/roles/*.yaml</c> defines it.</summary>
public sealed record Role(string Name, string? Description, IReadOnlyList<PermissionGrant> Grants, string SourceFile);

/// <summary>A user's roles as StackStorm's <c>rbac/assignments/*.yaml</c> gives them.</summary>
public sealed record RoleAssignment(string Username, IReadOnlyList<string> Roles, string SourceFile);

/// <summary>A problem in an RBAC file: the file, the line and what is wrong.</summary>
public sealed record RbacProblem(string File, SourcePosition Position, string Message)
{
    public override string ToString() => $"{File}:{Position}: {Message}";
}

/// <summary>The RBAC files have problems; nothing is served until they are fixed.</summary>
public sealed class RbacLoadException(IReadOnlyList<RbacProblem> problems)
    : Exception($"the RBAC definitions have {problems.Count} problem(s):{Environment.NewLine}{string.Join(Environment.NewLine, problems)}")
{
    public IReadOnlyList<RbacProblem> Problems { get; } = problems;
}

/// <summary>The roles and assignments in force: StackStorm's system roles plus those read from the RBAC folder.</summary>
public sealed class RbacDefinitions
{
    public const string SystemAdmin = "system_admin";
    public const string Admin = "admin";
    public const string Observer = "observer";

    public static readonly IReadOnlySet<string> SystemRoles = new HashSet<string>([SystemAdmin, Admin, Observer], StringComparer.Ordinal);

    public static readonly RbacDefinitions Empty = new([], []);

    public RbacDefinitions(IReadOnlyList<Role> roles, IReadOnlyList<RoleAssignment> assignments)
    {
        Roles = roles.ToDictionary(r => r.Name, StringComparer.Ordinal);
        Assignments = assignments.ToDictionary(a => a.Username, StringComparer.Ordinal);
    }

    public IReadOnlyDictionary<string, Role> Roles { get; }

    public IReadOnlyDictionary<string, RoleAssignment> Assignments { get; }

    /// <summary>
    /// Reads <c>roles/*.yaml</c> and <c>assignments/*.yaml</c> under <paramref name="folder"/> (in name order, as st2
    /// does), checking every file; throws <see cref="RbacLoadException"/> listing every problem.
    /// </summary>
    public static RbacDefinitions Load(string folder)
    {
        var problems = new List<RbacProblem>();
        var roles = new List<Role>();
        var assignments = new List<RoleAssignment>();
        foreach (var (file, root) in Read(Path.Combine(folder, "roles"), problems))
        {
            if (ReadRole(file, root, problems) is { } role)
            {
                if (SystemRoles.Contains(role.Name) || roles.Any(r => r.Name == role.Name))
                {
                    problems.Add(new(file, root.Position, SystemRoles.Contains(role.Name)
                        ? $"role '{role.Name}' is a system role and cannot be redefined"
                        : $"role '{role.Name}' is defined twice (also in {roles.First(r => r.Name == role.Name).SourceFile})"));
                }
                else
                {
                    roles.Add(role);
                }
            }
        }

        foreach (var (file, root) in Read(Path.Combine(folder, "assignments"), problems))
        {
            if (ReadAssignment(file, root, roles, problems) is { } assignment)
            {
                if (assignments.FirstOrDefault(a => a.Username == assignment.Username) is { } other)
                {
                    problems.Add(new(file, root.Position, $"user '{assignment.Username}' is assigned twice (also in {other.SourceFile})"));
                }
                else
                {
                    assignments.Add(assignment);
                }
            }
        }

        return problems.Count > 0 ? throw new RbacLoadException(problems) : new RbacDefinitions(roles, assignments);
    }

    private static IEnumerable<(string File, YamlMapping Root)> Read(string folder, List<RbacProblem> problems)
    {
        if (!Directory.Exists(folder))
        {
            yield break;
        }

        foreach (var file in Directory.GetFiles(folder, "*.yaml").Order(StringComparer.Ordinal))
        {
            YamlNode? root;
            try
            {
                root = BoundedYamlReader.Read(File.ReadAllText(file));
            }
            catch (YamlReadException ex)
            {
                problems.Add(new(file, ex.Position, $"YAML error: {ex.Message}"));
                continue;
            }

            if (root is YamlMapping mapping)
            {
                yield return (file, mapping);
            }
            else
            {
                problems.Add(new(file, root?.Position ?? SourcePosition.Unknown, "expected a mapping"));
            }
        }
    }

    // A false "enabled" leaves the file out, as st2 skips disabled roles and assignments.
    private static bool Enabled(string file, YamlMapping root, List<RbacProblem> problems)
    {
        if (root["enabled"] is not { } node)
        {
            return true;
        }

        if (node is YamlScalar { Value: "true" or "True" or "false" or "False" } flag)
        {
            return flag.Value is "true" or "True";
        }

        problems.Add(new(file, node.Position, "enabled: expected true or false"));
        return false;
    }

    private static Role? ReadRole(string file, YamlMapping root, List<RbacProblem> problems)
    {
        Unknown(file, root, ["name", "description", "enabled", "permission_grants"], problems);
        var name = Text(file, root, "name", required: true, problems);
        var grants = new List<PermissionGrant>();
        if (root["permission_grants"] is YamlSequence list)
        {
            foreach (var item in list.Items)
            {
                if (item is not YamlMapping grant)
                {
                    problems.Add(new(file, item.Position, "permission_grants: each grant must be a mapping with resource_uid and permission_types"));
                    continue;
                }

                Unknown(file, grant, ["resource_uid", "permission_types"], problems);
                var uid = Text(file, grant, "resource_uid", required: false, problems);
                var types = (grant["permission_types"] as YamlSequence)?.Items.OfType<YamlScalar>().Select(s => (s.Value, s.Position)).ToList();
                if (types is null || types.Count == 0)
                {
                    problems.Add(new(file, grant.Position, "permission_types: expected a list of StackStorm permission types"));
                    continue;
                }

                foreach (var (type, position) in types)
                {
                    if (CheckGrant(uid, type) is { } problem)
                    {
                        problems.Add(new(file, position, problem));
                    }
                }

                grants.Add(new PermissionGrant(uid, [.. types.Select(t => t.Value)]));
            }
        }
        else if (root["permission_grants"] is { } other)
        {
            problems.Add(new(file, other.Position, "permission_grants: expected a list"));
        }

        return name is not null && Enabled(file, root, problems) ? new Role(name, Text(file, root, "description", required: false, problems), grants, file) : null;
    }

    /// <summary>Why a permission type cannot be granted on this resource uid, or null (st2's checks).</summary>
    internal static string? CheckGrant(string? uid, string type)
    {
        if (!Permissions.ResourceTypes.TryGetValue(type, out var resourceType))
        {
            return $"unknown permission type '{type}'";
        }

        if (uid is null)
        {
            return Permissions.Global.Contains(type) ? null
                : $"'{type}' needs a resource_uid; the types that can be granted without one are: {string.Join(", ", Permissions.Global.Order(StringComparer.Ordinal))}";
        }

        var uidType = uid.Split(':')[0];
        return uidType == resourceType || (uidType == "pack" && Permissions.PackContent.Contains(resourceType)) || (uidType == "inquiry" && resourceType == "inquiry")
            ? null
            : $"'{type}' applies to {resourceType} resources, not to '{uid}'";
    }

    private static RoleAssignment? ReadAssignment(string file, YamlMapping root, List<Role> roles, List<RbacProblem> problems)
    {
        Unknown(file, root, ["username", "roles", "description", "enabled"], problems);
        var user = Text(file, root, "username", required: true, problems);
        if (root["roles"] is not YamlSequence list || list.Items.Count == 0)
        {
            problems.Add(new(file, root["roles"]?.Position ?? root.Position, "roles: expected a list of role names"));
            return null;
        }

        var names = new List<string>();
        foreach (var item in list.Items)
        {
            if (item is YamlScalar { Value: { Length: > 0 } role } && (SystemRoles.Contains(role) || roles.Any(r => r.Name == role)))
            {
                names.Add(role);
            }
            else
            {
                problems.Add(new(file, item.Position, $"roles: '{(item as YamlScalar)?.Value}' is not a role (system roles: {string.Join(", ", SystemRoles)}; others from rbac/roles)"));
            }
        }

        return user is not null && Enabled(file, root, problems) ? new RoleAssignment(user, names, file) : null;
    }

    private static string? Text(string file, YamlMapping root, string field, bool required, List<RbacProblem> problems)
    {
        switch (root[field])
        {
            case YamlScalar { Value: { Length: > 0 } value }:
                return value;
            case null when !required:
                return null;
            case var node:
                problems.Add(new(file, node?.Position ?? root.Position, $"{field}: expected text"));
                return null;
        }
    }

    private static void Unknown(string file, YamlMapping root, string[] known, List<RbacProblem> problems)
    {
        foreach (var (key, _) in root.Entries.Where(e => !known.Contains(e.Key.Value)))
        {
            problems.Add(new(file, key.Position, $"unknown field '{key.Value}' (expected: {string.Join(", ", known)})"));
        }
    }
}
