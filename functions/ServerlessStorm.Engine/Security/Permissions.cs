namespace ServerlessStorm.Engine.Security;

/// <summary>
/// StackStorm's RBAC permission types, by the names its role files use, each with the resource type it applies to,
/// and which are global (granted without a resource).
/// </summary>
public static class Permissions
{
    /// <summary>Any authenticated caller may (the API's root, asking for a token).</summary>
    public const string None = "";

    public const string ActionList = "action_list";
    public const string ActionView = "action_view";
    public const string ActionExecute = "action_execute";
    public const string ActionAll = "action_all";

    public const string PackList = "pack_list";

    public const string SensorTypeList = "sensor_type_list";
    public const string SensorTypeView = "sensor_type_view";
    public const string SensorTypeModify = "sensor_type_modify";

    public const string ExecutionList = "execution_list";
    public const string ExecutionView = "execution_view";
    public const string ExecutionReRun = "execution_rerun";
    public const string ExecutionStop = "execution_stop";
    public const string ExecutionAll = "execution_all";

    public const string TriggerList = "trigger_list";
    public const string TraceView = "trace_view";

    public const string WebhookSend = "webhook_send";

    public const string KeyValuePairList = "key_value_pair_list";
    public const string KeyValuePairView = "key_value_pair_view";
    public const string KeyValuePairSet = "key_value_pair_set";
    public const string KeyValuePairDelete = "key_value_pair_delete";

    public const string InquiryList = "inquiry_list";
    public const string InquiryView = "inquiry_view";
    public const string InquiryRespond = "inquiry_respond";

    public const string ApiKeyList = "api_key_list";
    public const string ApiKeyView = "api_key_view";
    public const string ApiKeyCreate = "api_key_create";
    public const string ApiKeyModify = "api_key_modify";
    public const string ApiKeyDelete = "api_key_delete";

    /// <summary>Ours, not StackStorm's (it has no dead letters): seeing what the bus gave up on, and putting it back.</summary>
    public const string DeadLetterList = "dead_letter_list";
    public const string DeadLetterReplay = "dead_letter_replay";

    /// <summary>Ours, not StackStorm's (its purge is a tool run on the server): deleting audit records before a date.</summary>
    public const string AuditPurge = "audit_purge";

    /// <summary>Every permission type StackStorm knows, with its resource type (the prefix of the uids it applies to).</summary>
    public static readonly IReadOnlyDictionary<string, string> ResourceTypes = BuildResourceTypes();

    /// <summary>Permission types granted without a resource (st2's GLOBAL_PERMISSION_TYPES).</summary>
    public static readonly IReadOnlySet<string> Global = new HashSet<string>(
        ResourceTypes.Keys.Where(p => p.EndsWith("_list", StringComparison.Ordinal)).Concat(
        [
            "pack_install", "pack_uninstall", "pack_create", "pack_register", "pack_config", "pack_search", "pack_views_index_health",
            "action_alias_match", "action_alias_help", ApiKeyCreate, "policy_create", "stream_view", InquiryList, InquiryRespond, InquiryView,
            DeadLetterReplay, AuditPurge,
        ]), StringComparer.Ordinal);

    /// <summary>Content that lives in a pack, where a grant on <c>pack:NAME</c> covers it.</summary>
    public static readonly IReadOnlySet<string> PackContent = new HashSet<string>(["action", "action_alias", "rule", "sensor_type", "policy"], StringComparer.Ordinal);

    private static Dictionary<string, string> BuildResourceTypes()
    {
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string resource, params string[] verbs)
        {
            foreach (var verb in verbs)
            {
                types[$"{resource}_{verb}"] = resource;
            }
        }

        Add("runner_type", "list", "view", "modify", "all");
        Add("pack", "list", "view", "create", "modify", "delete", "install", "uninstall", "register", "config", "search", "views_index_health", "all");
        Add("sensor_type", "list", "view", "modify", "all");
        Add("action", "list", "view", "create", "modify", "delete", "execute", "all");
        Add("action_alias", "list", "view", "create", "modify", "match", "help", "delete", "all");
        Add("rule", "list", "view", "create", "modify", "delete", "all");
        Add("rule_enforcement", "list", "view");
        Add("execution", "list", "view", "rerun", "stop", "all", "views_filters_list");
        Add("key_value_pair", "list", "view", "set", "delete", "all");
        Add("webhook", "list", "view", "create", "send", "delete", "all");
        Add("timer", "list", "view", "all");
        Add("api_key", "list", "view", "create", "modify", "delete", "all");
        Add("trace", "list", "view", "all");
        Add("dead_letter", "list", "replay");
        Add("audit", "purge");
        Add("trigger", "list", "view", "all");
        Add("policy_type", "list", "view", "all");
        Add("policy", "list", "view", "create", "modify", "delete", "all");
        Add("inquiry", "list", "view", "respond", "all");
        types["stream_view"] = "stream";
        return types;
    }
}
