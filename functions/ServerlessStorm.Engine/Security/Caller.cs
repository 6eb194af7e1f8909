namespace ServerlessStorm.Engine.Security;

/// <summary>
/// Who made a request, once proven: the user name that the audit records (StackStorm's <c>context.user</c>) and how
/// they proved it.
/// </summary>
public sealed record Caller(string User, string Method)
{
    public const string ByApiKey = "api_key";
    public const string ByToken = "token";
    public const string ByPassword = "password";
    public const string ByEntraId = "entra_id";

    /// <summary>A webhook delivery whose signature its hook's declaration verified.</summary>
    public const string BySignature = "signature";

    /// <summary>A request to a server started with authentication off (loopback only).</summary>
    public const string ByAuthDisabled = "auth_disabled";

    /// <summary>The engine itself: rules firing, workflows running their tasks, timers.</summary>
    public const string ByEngine = "engine";
}
