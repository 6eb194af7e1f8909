using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Testing;

/// <summary>Callers for tests that call the engine's API operations directly, past the gateway.</summary>
public static class TestCallers
{
    public static readonly Caller Admin = new("st2admin", Caller.ByApiKey);
}
