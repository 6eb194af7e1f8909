namespace ServerlessStorm.Engine.Security;

/// <summary>StackStorm's RBAC permission types, by the names its role files use.</summary>
public static class Permissions
{
    /// <summary>Any authenticated caller may (the API's root, asking for a token).</summary>
    public const string None = "";

    public const string ActionList = "action_list";
    public const string ActionView = "action_view";
    public const string ActionExecute = "action_execute";
    public const string ActionAll = "action_all";

    public const string ExecutionList = "execution_list";
    public const string ExecutionView = "execution_view";
    public const string ExecutionReRun = "execution_re_run";
    public const string ExecutionStop = "execution_stop";
    public const string ExecutionAll = "execution_all";

    public const string RuleList = "rule_list";
    public const string RuleView = "rule_view";

    public const string TriggerInstanceList = "trigger_instance_list";
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
}
